"""mibzoo: structured latent-variable generative models as a Keras 3 zoo.

Implements R. Zhang, M. Koyama, K. Ishiguro, "Learning Structured Latent Factors from Dependent
Data: A Generative Model Framework from Information-Theoretic Perspective", ICML 2020.

```python
import mibzoo
mibzoo.list_models()
model = mibzoo.load("wyner_vae")
```
"""
from mibzoo import data
from mibzoo.registry import describe, list_models, load

__version__ = "0.1.0"
__all__ = ["data", "describe", "list_models", "load", "__version__"]
