from saathii_ops.cli import main

main()
