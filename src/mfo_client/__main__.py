from mfo_client.cli import main

main()
