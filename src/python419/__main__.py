from python419.entry import main

main()
