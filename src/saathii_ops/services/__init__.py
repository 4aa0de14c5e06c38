"""The rules of the jobs. Services know nothing of Typer or Rich and never commit."""
