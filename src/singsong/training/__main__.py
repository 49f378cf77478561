"""``python -m singsong.training STAGE ...``: ``singsong train`` alone, what torchrun launches::

    torchrun --nproc_per_node 8 -m singsong.training stage1 --config small --tokens T --out R

(A module of its own: ``-m singsong.cli.train`` would run a module that the ``singsong.cli``
package has already imported, which runpy warns about.)
"""

from singsong.cli.train import main

raise SystemExit(main())
