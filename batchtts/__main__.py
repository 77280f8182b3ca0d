from batchtts.cli import main

main()
