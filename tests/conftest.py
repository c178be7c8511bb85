"""Suite-wide settings.

pytest runs with two workers (`-n 2`) on a 2-core machine: one torch thread per worker uses
both cores without OpenMP threads spinning against each other, which made convolutions
several times slower than one thread here."""

import torch

torch.set_num_threads(1)
