"""``python -m lcid`` runs the command line."""

from lcid.cli import main

main()
