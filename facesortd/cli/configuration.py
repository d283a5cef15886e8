"""`config`: which config file this facesortd reads, and (`--example`) every key with its default."""

from __future__ import annotations

import argparse
import os
import shlex

from facesortd.advice import advised
from facesortd.cli.stopping import say
from facesortd.config import default_config_file, home_expanded, is_setting_variable
from facesortd.package_data import CONFIG_EXAMPLE, package_file
from facesortd.shown_names import one_line


def cmd_config(args: argparse.Namespace) -> int:
    """Say which config file facesortd reads (--config FILE, else the default one) and whether it is
    there; with --example, print instead an example config file on stdout: every key commented out at
    its default, with what it does, to copy from. Read nothing of the config itself, so that it also
    helps one that is broken (`facesortd doctor` checks it)."""
    if args.example:
        say(package_file(CONFIG_EXAMPLE).read_text(encoding="utf-8"), end="")
        return 0
    try:
        path = home_expanded(args.config) if args.config else default_config_file()
    except ValueError as exc:
        say(f"config file {one_line(args.config)}: {exc}, so every command given it refuses to run")
        return 0
    if path.is_file():
        named = "named by --config" if args.config else "the default place"
        say(f"config file: {one_line(path)} ({named}; `{advised('doctor')}` checks it)")
    elif path.exists():  # a folder, a FIFO: every command refuses it, the defaults are not in force
        say(f"config file: {one_line(path)} is not a file, so every command refuses to run: move it away")
    elif args.config:  # load_settings refuses a file named that is not there
        say(f"config file: {one_line(path)}: not there, so every command given it refuses to run")
    else:
        say(f"config file: {one_line(path)}: not there, so the built-in defaults are in force")
    # Settings too, ahead of the file: "the built-in defaults are in force" beside FACESORTD_LIBRARY
    # said what this shell's commands did not do.
    if variables := sorted(k for k in os.environ if is_setting_variable(k)):
        say(
            f"this shell also sets {', '.join(variables)}: such variables come before the config file "
            "(a service systemd starts does not see them: it reads the file and its unit)"
        )
    folder, file = (shlex.quote(str(p)) for p in (path.parent, path))
    start = f"mkdir -p {folder} && facesortd config --example > {file}"
    say(
        "`facesortd config --example` prints every key with its default and what it does"
        + ("" if path.exists() else f"; to start one from it: {one_line(start)}")
    )
    return 0


def add_config(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "config",
        help="which config file is read; --example: every key with its default",
        description=cmd_config.__doc__,
    )
    p.add_argument(
        "--example",
        action="store_true",
        help="print an example config file (every key at its default, commented out, with what it does)",
    )
    p.set_defaults(func=cmd_config)
