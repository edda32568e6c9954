"""One module per `toolgym` subcommand: `add_arguments(parser)` and `run(args) -> int`."""
