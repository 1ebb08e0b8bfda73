"""One module per ``recall-lab`` subcommand."""
