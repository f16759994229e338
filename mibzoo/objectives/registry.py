"""The registry of loss terms: `Term` (a term declared as data: its kind, whether it is indexed by
modality, the critic or auxiliary network it trains, what it needs of the posterior) and
`register_term`, which every term module uses."""
import dataclasses
from typing import Callable, Optional


@dataclasses.dataclass(frozen=True)
class HyperParameter:
    """A named number a term reads from the model's ``hyperparameters`` (beside the ones its
    weights refer to), declared with its default and the values it allows, so that a config that
    gives it a bad value is refused when it is parsed (`mibzoo.spec`) rather than when the term
    is first traced.

    Attributes:
        default: the value when the config does not give one (``None``: the term's behaviour
            without it, described in ``meaning``).
        meaning: what the number is, for the error message.
        minimum: the smallest value allowed.
        exclusive_minimum: whether ``minimum`` itself is refused.
        integer: whether the value must be a whole number.
        maximum: the largest value allowed (``None``: no upper bound).
    """

    default: Optional[float]
    meaning: str
    minimum: float = 0.0
    exclusive_minimum: bool = False
    integer: bool = False
    maximum: Optional[float] = None

    def accepts(self, value):
        """Whether ``value`` (a finite number, as `mibzoo.spec` already checked) is allowed."""
        if self.integer and float(value) != int(value):
            return False
        if self.maximum is not None and value > self.maximum:
            return False
        return value > self.minimum if self.exclusive_minimum else value >= self.minimum

    def allowed(self):
        """The allowed values in words, for `mibzoo.errors.ConfigError`."""
        bound = f"> {self.minimum:g}" if self.exclusive_minimum else f">= {self.minimum:g}"
        if self.maximum is not None:
            bound += f" and <= {self.maximum:g}"
        return f"{'an integer' if self.integer else 'a number'} {bound} ({self.meaning})"


@dataclasses.dataclass(frozen=True)
class Term:
    """A named loss term.

    Attributes:
        name: the name used in zoo configs.
        kind: ``"cost"`` (an L_dist term, Table 1) or ``"regularizer"`` (an L_str_reg term).
        per_modality: whether `fn` returns one value per modality (``[N]``) instead of a scalar.
        fn: ``fn(forward_pass) -> tensor``.
        description: what the term is, with the paper's notation.
        options: ``{option: allowed values}``: the term's own ``term_options`` (the first value is
            the default), read with `Term.option`.
        hyperparameters: ``{name: HyperParameter}``: the model hyperparameters the term reads,
            read with `Term.hyperparameter`.
        state: ``state(model) -> keras layer or None``: variables the term keeps across training
            steps and updates itself (running statistics, never trained by an optimizer), built
            by the term from the model's config; ``None`` where the config does not need them.
    """

    name: str
    kind: str
    per_modality: bool
    fn: Callable
    description: str
    needs_inference: bool = True
    critic: Optional[Callable] = None
    critic_loss: Optional[Callable] = None
    auxiliary: Optional[Callable] = None
    needs_gaussian_posterior: bool = False
    options: dict = dataclasses.field(default_factory=dict)
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    state: Optional[Callable] = None

    def option(self, model_config, key):
        """The value of this term's option ``key`` in a model's config (``term_options``), else
        its default (the first allowed value, `register_term`'s ``options``)."""
        return model_config.get("term_options", {}).get(self.name, {}).get(key, self.options[key][0])

    def hyperparameter(self, model_config, key):
        """The value of the hyperparameter ``key`` this term reads (declared in ``hyperparameters``)
        in a model's config, else its declared default."""
        return model_config.get("hyperparameters", {}).get(key, self.hyperparameters[key].default)


TERMS = {}


def register_term(name, kind, per_modality=False, description="", needs_inference=True,
                  critic=None, critic_loss=None, auxiliary=None, needs_gaussian_posterior=False,
                  options=None, hyperparameters=None, state=None):
    """Decorator registering ``fn(forward_pass)`` as the term ``name``.

    Args:
        name: the name zoo configs use.
        kind: ``"cost"`` (L_dist) or ``"regularizer"`` (L_str_reg).
        per_modality: ``fn`` returns ``[N]`` values, one per modality.
        description: defaults to ``fn``'s docstring.
        needs_inference: whether the term uses q(z | x) (not allowed without an inference network).
        critic: ``critic(model) -> keras layer``: a network trained adversarially in the phase
            ``critic:<name>`` to minimize ``critic_loss(forward_pass)`` (Algorithm 1, generalized).
        critic_loss: the critic's loss, required with ``critic``.
        auxiliary: ``auxiliary(model) -> keras layer``: a network trained with the model's
            networks on the same loss (InfoGAN's Q); with ``term_options: {name: {"shares_critic": c}}``
            it reads critic ``c``'s features and is trained in phase ``critic:c`` instead, on the
            critic's loss plus this term (`MIBModel.critic_objective`).
        needs_gaussian_posterior: whether ``fn`` reads q(z | x) as one diagonal Gaussian
            (``fp.posterior()``); config validation refuses it with a mixture (`mibzoo.aggregation`).
        options: ``{option: (allowed values...)}``: choices a config makes for this term with
            ``term_options: {name: {option: value}}``, validated by `mibzoo.spec`; the first
            allowed value is the default.
        hyperparameters: ``{name: HyperParameter}``: the numbers ``fn`` reads from the model's
            ``hyperparameters``, validated by `mibzoo.spec` when a config using the term is parsed.
        state: ``state(model) -> keras layer or None``: non-trainable variables ``fn`` keeps across
            training steps (read with ``forward_pass.term_state(name)``), saved with the model.
    """
    if kind not in ("cost", "regularizer"):
        raise ValueError(f"register_term({name!r}): kind must be 'cost' or 'regularizer', got {kind!r}")
    if (critic is None) != (critic_loss is None):
        raise ValueError(f"register_term({name!r}): critic and critic_loss go together")

    def decorate(fn):
        if name in TERMS:
            raise ValueError(f"register_term: a term named {name!r} is already registered")
        TERMS[name] = Term(name, kind, per_modality, fn, description or (fn.__doc__ or "").strip(),
                           needs_inference, critic, critic_loss, auxiliary, needs_gaussian_posterior,
                           {key: tuple(values) for key, values in (options or {}).items()},
                           dict(hyperparameters or {}), state)
        return fn

    return decorate


def built(layer, input_shape):
    """``layer`` built for ``input_shape``: a term's critic or auxiliary network, ready to be tracked."""
    layer.build(input_shape)
    return layer


def get_term(name):
    if name not in TERMS:
        raise KeyError(name)
    return TERMS[name]
