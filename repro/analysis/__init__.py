"""The paper's training-dynamics metrics (docs/paper.md section 4) for any nn.Module and loss.

`metrics`: pure maths on flattened gradients. `gradients`: computing mini-batch and whole-set
gradients at a frozen model without side effects. `probe`: measuring during training, masks on
and off. `measure` and `batch_axis`: measuring saved weights afterwards.
"""
from repro.analysis.gradients import flat_grad, full_gradient, minibatch_gradients, parameter_blocks
from repro.analysis.metrics import (
    bias_variance,
    cosine,
    grad_direction_error,
    grad_direction_variance,
    grad_norm,
    model_distance,
    noise_to_signal,
    subset_error,
)

__all__ = ["bias_variance", "cosine", "flat_grad", "full_gradient", "grad_direction_error",
           "grad_direction_variance", "grad_norm", "minibatch_gradients", "model_distance",
           "noise_to_signal", "parameter_blocks", "subset_error"]
