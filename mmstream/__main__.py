from mmstream.cli import main

main()
