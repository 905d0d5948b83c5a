"""``python -m pot_flower`` is the ``pot`` command."""

from pot_flower.cli import main

main()
