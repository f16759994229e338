"""The weights of a zoo config's terms (Eq. 8's α_t and β_k): numbers, arithmetic expressions over the
hyperparameters and ``N`` as Table 2 writes them (``"beta - 1"``, ``"beta * alpha / N"``), or, for
per-modality terms, ``{modality name, kind or "*": weight}``. Expressions are parsed, never evaluated as Python."""
import ast
import math
import operator

from mibzoo.errors import ConfigError, did_you_mean
from mibzoo.modalities import NAME_FREE_KEYS, modality_key, modality_keys_allowed


_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate_weight_expression(expression, hyperparameters, source, field):
    """Evaluates ``"beta - 1"``-style weights: numbers, hyperparameter names, + - * / and unary minus."""
    allowed = f"a number or an arithmetic expression over the hyperparameters {sorted(hyperparameters)}"

    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return float(node.value)
        if isinstance(node, ast.Name) and node.id in hyperparameters:
            return float(hyperparameters[node.id])
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](walk(node.left), walk(node.right))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            value = walk(node.operand)
            return -value if isinstance(node.op, ast.USub) else value
        raise ConfigError(source, field, expression, allowed)

    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError:
        raise ConfigError(source, field, expression, allowed) from None
    try:
        value = walk(tree)
    except ZeroDivisionError:
        raise ConfigError(source, field, expression, "an expression without division by zero") from None
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise ConfigError(source, field, expression, f"an expression with a finite value (it evaluates to {value})")
    return value


# Names every weight expression may use besides the hyperparameters (Table 2 writes rows over N).
RESERVED_WEIGHT_NAMES = ("N",)


def resolve_weight(weight, term, modality_names, hyperparameters, source, field, modality_kinds=None):
    """Turns a config weight into a float (scalar terms) or a list of N floats (per-modality terms).

    A per-modality weight ``{key: weight}`` is keyed by modality names or, with ``modality_kinds``
    (the kind of each modality, in order), also by modality kinds (any of `mibzoo.modalities.KINDS`,
    present or not: a kind key is a rule for whatever modalities of that kind a data set has) and by
    ``"*"`` (every modality keyed by neither): a modality's own name wins over its kind, its kind over
    ``"*"``, and a modality keyed by none of them gets 0 (`mibzoo.modalities.modality_key`, as
    `mibzoo.spec.private_sizes` reads ``private``).
    Kind keys let an entry keep its weights when a data set renames its modalities (MNIST-Plus-1's
    ``image_a``, ``image_b``; the ``unrelated`` image of ``mnist_label_unrelated``)."""
    names = {**hyperparameters, "N": len(modality_names)}
    kinds = list(modality_kinds) if modality_kinds is not None else [None] * len(modality_names)

    def scalar(value, where):
        if isinstance(value, str):
            value = evaluate_weight_expression(value, names, source, where)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ConfigError(source, where, value, "a finite number or an expression over the hyperparameters")
        if value < 0:
            raise ConfigError(source, where, value, "a non-negative weight (Eq. 8: α ≥ 0, β ≥ 0)")
        return float(value)

    if isinstance(weight, dict):
        if not term.per_modality:
            raise ConfigError(source, field, weight, f"a single number: term '{term.name}' is not per-modality")
        if modality_kinds is None:
            known, allowed = set(modality_names), f"weights keyed by the modalities {list(modality_names)}"
        else:
            known = set(modality_names) | NAME_FREE_KEYS
            allowed = f"weights keyed by {modality_keys_allowed(modality_names)}"
        unknown = sorted(set(weight) - known)
        if unknown:
            hint = did_you_mean(unknown[0], sorted(known))
            raise ConfigError(source, f"{field}.{unknown[0]}", weight[unknown[0]], allowed + hint)
        keys = [modality_key(weight, n, kind) for n, kind in zip(modality_names, kinds)]
        return [scalar(weight[key], f"{field}.{key}") if key is not None else 0.0 for key in keys]
    value = scalar(weight, field)
    return [value] * len(modality_names) if term.per_modality else value
