"""IDGI (Yang, Wang & Bilen 2023, "IDGI: A Framework to Eliminate Explanation Noise from
Integration Gradients", CVPR): keep, of each path step, only the gradient's component
along the direction in which the output changes.

For a path from ``x'`` to ``x`` with gradients ``g_k`` at its points and output changes
``d_k`` (``F_c`` after the step minus before it), IDGI's attribution is
``A = sum_k g_k ⊙ g_k / ||g_k||² · d_k``: each step's map sums to that step's exact
output change, so ``sum A = F_c(x) - F_c(x')`` whatever the number of steps. It reuses
the path's gradients and scores: no model pass beyond the path method's own.

Which output change goes with which gradient: the path's scored positions, in the order
the path core evaluates them (step index ``k = 0 .. B-1``), are the end next to step 0,
the ``B`` points and the end next to step ``B-1``; the change over the interval between
two consecutive positions goes to the gradient at its first position that is a gradient
point (IDGI's reference code, ``Gradients[i]`` with ``Predictions[i+1] - Predictions[i]``),
the interval before step 0 to step 0. For the right rule the first interval (baseline to
``alpha_1``) thus goes to the gradient at ``alpha_1``; for paths indexed from ``x``
towards the baseline (Blur IG's scale space) the sign flips (``reverse``).

:class:`IDGIAccumulator` streams this: rows arrive image-major with ``k`` ascending (as
:func:`uni.methods.path.path_gradients` evaluates them), and only the previous step's and
the first step's projected gradient are kept per image, so memory does not grow with ``B``.
"""

from __future__ import annotations

import torch


def projected(grad: torch.Tensor) -> torch.Tensor:
    """``g ⊙ g / ||g||²`` per row (float32); a zero gradient gives a zero map."""
    square = grad.float() ** 2
    total = square.flatten(1).sum(1).view(-1, *[1] * (grad.dim() - 1))
    return torch.where(total > 0, square / total.clamp_min(1e-38), torch.zeros_like(square))


class IDGIAccumulator:
    """IDGI attributions of ``num_images`` paths, fed chunk by chunk with :meth:`add`
    (``i`` image indices, ``k`` step indices, image-major with ``k`` ascending, the
    gradients and the scores ``F_c`` at those points) and read with :meth:`result`."""

    def __init__(self, num_images: int, steps: int):
        self.steps = steps
        self.num_images = num_images
        self.total = None
        self.previous = None  # each image's projected gradient at its last step so far
        self.first = None  # and at step 0, with its score (its interval starts at an end)
        self.first_score = torch.zeros(num_images)

    def _allocate(self, like: torch.Tensor) -> None:
        shape = (self.num_images, *like.shape[1:])
        self.total = torch.zeros(shape, device=like.device, dtype=torch.float32)
        self.previous = torch.zeros_like(self.total)
        self.first = torch.zeros_like(self.total)
        self.first_score = self.first_score.to(like.device)

    def add(self, i: torch.Tensor, k: torch.Tensor, grad: torch.Tensor,
            values: torch.Tensor) -> None:
        grad = grad.detach()
        if self.total is None:
            self._allocate(grad)
        u = projected(grad)
        values = values.detach().float()
        shape = (-1, *[1] * (grad.dim() - 1))
        # the previous step of the same image: the row before in this chunk, or the
        # one kept from the last chunk
        same = torch.zeros_like(i, dtype=torch.bool)
        same[1:] = i[1:] == i[:-1]
        before = torch.cat([u[:1], u[:-1]])
        previous = torch.where(same.view(shape), before, self.previous[i])
        has_previous = (k > 0).float().view(shape)
        # step k-1 gets F(p_k) - F(p_{k-1}); step k is charged -F(p_k) now
        self.total.index_add_(0, i, (previous * has_previous - u) * values.view(shape))
        last = torch.ones_like(same)
        last[:-1] = i[:-1] != i[1:]
        self.previous[i[last]] = u[last]
        starts = k == 0
        self.first[i[starts]] = u[starts]
        self.first_score[i[starts]] = values[starts]

    def result(self, score_start: torch.Tensor, score_finish: torch.Tensor,
               reverse: bool = False) -> torch.Tensor:
        """The attributions: ``score_start`` is ``F_c`` at the end next to step 0,
        ``score_finish`` at the end next to the last step; ``reverse``: the steps run
        from ``x`` towards the baseline."""
        shape = (-1, *[1] * (self.total.dim() - 1))
        start = score_start.detach().float().to(self.total.device).view(shape)
        finish = score_finish.detach().float().to(self.total.device).view(shape)
        # step 0 was charged -F(p_0) but its interval starts at the end; the last step
        # gets the end's score
        total = (self.total + self.first * (self.first_score.view(shape) - start)
                 + self.previous * finish)
        return -total if reverse else total
