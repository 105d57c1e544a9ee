// Stand-in for xmlbuilder2: vtk.js's XML reader/writer import it, a stack viewer never
// calls them, and the real package breaks the browser bundle ("Dynamic require of url").
export function create() {
  throw new Error("xmlbuilder2 is not part of the radiolens viewer bundle");
}
export default { create };
