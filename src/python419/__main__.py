from python419.cli import main

main()
