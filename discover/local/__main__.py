"""``python -m discover.local``: run the embedded AWS sandbox server process."""

from discover.local.server import main

main()
