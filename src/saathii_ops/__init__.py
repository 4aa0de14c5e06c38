"""saathii-ops: the back-office jobs of Saathii behind one CLI."""

__version__ = "0.1.0"
