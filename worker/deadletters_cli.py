"""placeholder"""
from __future__ import annotations

import argparse


def add_deadletter_args(p: argparse.ArgumentParser) -> None:
    pass


async def deadletters_main(args: argparse.Namespace) -> int:
    return 0
