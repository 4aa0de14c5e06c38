"""The command line: the Typer app, its context object and one thin module per command group."""
