import gc

gc.disable()  # start-up's imports allocate a great deal and free little; cli.main turns collection back on

from .cli import main  # noqa: E402

main()
