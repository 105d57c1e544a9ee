"""``radiolens users``: local accounts of the people who review and sign AI drafts."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

EXAMPLES = """\
examples:
  printf '%s\\n' "$PASSWORD" | radiolens users add ada --role reviewer --password-stdin
  radiolens users add admin --role admin                 (asks for the password twice)
  radiolens users token ada          (a personal API token for scripts; shown only once)
  radiolens users list

The reviewer of every signed review is the logged-in user. The service token
(RADIOLENS_API_TOKEN) stays the administrator's.
"""


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "users", help="manage reviewer and admin accounts (argon2 passwords, API tokens)",
        description="Manage the local accounts of the triage service: add a user, issue a "
                    "personal API token, list users. Works on the data folder (or --db) "
                    "that `radiolens serve` uses.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    add = actions.add_parser("add", help="add a user")
    add.add_argument("name", metavar="NAME")
    add.add_argument("--role", choices=["reviewer", "admin"], default="reviewer",
                     help="reviewer (default) or admin")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password from the first line of standard input")
    token = actions.add_parser("token", help="issue a personal API token (replaces the old)")
    token.add_argument("name", metavar="NAME")
    actions.add_parser("list", help="list users")
    for q in (add, token, actions.choices["list"]):
        q.add_argument("--data-dir", default="radiolens-data", metavar="DIR",
                       help="the service's data folder (default ./radiolens-data)")
        q.add_argument("--db", metavar="URL", help="database URL (default: SQLite in the "
                                                   "data folder)")
    p.set_defaults(run=run)


def _password(args: argparse.Namespace) -> str:
    from radiolens.errors import ConfigError

    if args.password_stdin:
        line = sys.stdin.readline()
        if not line.strip():
            raise ConfigError("no password on standard input")
        return line.rstrip("\r\n")
    if not sys.stdin.isatty():
        raise ConfigError("no terminal to ask for a password: use --password-stdin")
    first = getpass.getpass(f"password for {args.name}: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def run(args: argparse.Namespace) -> int:
    from radiolens.errors import ConfigError
    from radiolens.worklist import default_db_path, open_worklist
    from radiolens.worklist.accounts import add_user, issue_api_token, list_users

    target = args.db or default_db_path(args.data_dir)
    if args.action != "add" and not args.db and not target.exists():
        raise ConfigError(f"no worklist at {target}: give the --data-dir (or --db) that "
                          "`radiolens serve` uses")
    engine = open_worklist(target)
    try:
        if args.action == "add":
            add_user(engine, args.name, args.role, _password(args))
            print(f"added {args.role} {args.name}")
        elif args.action == "token":
            print(issue_api_token(engine, args.name))
            print("keep it secret: it is shown only now; send it as "
                  "'Authorization: Bearer TOKEN'", file=sys.stderr)
        else:
            for user in list_users(engine):
                state = " (disabled)" if user.disabled else ""
                has_token = "token" if user.token_digest else "no token"
                print(f"{user.name}\t{user.role}\t{has_token}{state}")
    finally:
        engine.dispose()
    return 0
