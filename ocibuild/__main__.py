from ocibuild.cli import main

main()
