"""One thin module per command group: parse options, call one service, render its report."""
