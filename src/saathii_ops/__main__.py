from saathii_ops.cli.app import main

main()
