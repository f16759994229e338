"""Algorithm 1 as Keras training: a model's phases (network, structure and critic updates), each
with its variables, loss and optimizer, run in turn for their numbers of steps inside one compiled
train function; `compile` and its saved config; input errors raised from compiled steps surfaced.

`PhasedTraining` is the Keras half of `mibzoo.model.MIBModel`: it reads the model's ``phases``,
``compute_terms``, ``critic_objective`` and ``forward``, and owns nothing of the model's math.
"""
import keras
import tensorflow as tf
from keras import ops

from mibzoo import batch_inputs


def phase_calls(phases):
    """Algorithm 1's round of training calls: a list of calls, each the tuple of the phase indices it
    runs on one minibatch. A phase with ``"batch": "own"`` (the default) takes one call per step, as
    Algorithm 1 samples a minibatch for every step; a phase with ``"batch": "previous"`` adds its
    steps to the call before it, on that call's minibatch, and takes no call of its own (so an epoch of
    N minibatches gives the phases with their own minibatch N updates between them).

    >>> phase_calls([{"name": "dist", "steps": 2}, {"name": "structure", "steps": 1}])
    [(0,), (0,), (1,)]
    >>> phase_calls([{"name": "dist", "steps": 2}, {"name": "structure", "steps": 1, "batch": "previous"}])
    [(0,), (0, 1)]
    """
    calls = []
    for k, phase in enumerate(phases):
        for _ in range(phase["steps"]):
            if phase.get("batch", "own") == "previous":
                calls[-1] = calls[-1] + (k,)
            else:
                calls.append((k,))
    return calls


class PhasedTraining(keras.Model):
    """`fit`, `train_step` and `compile` for a list of phases (Algorithm 1; Eq. 15 for structure)."""

    def fit(self, *args, **kwargs):
        with batch_inputs.input_errors_surfaced():
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with batch_inputs.input_errors_surfaced():
            return super().evaluate(*args, **kwargs)

    def _update_trackers(self, terms, totals):
        for name, value in terms.items():
            self.term_trackers[name].update_state(value)
        if totals is not None:
            self.loss_tracker.update_state(totals["loss"])
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker] + list(self.term_trackers.values())

    # ----- Algorithm 1 ---------------------------------------------------------------------
    def compile(self, optimizer=None, structure_optimizer=None, critic_optimizer=None, **kwargs):
        """Configures training.

        Args:
            optimizer: optimizer of the network parameters φ, θ (the ``dist`` phase); defaults to
                Adam with the config's ``optimizers.dist`` settings (Adam(1e-3) unless set).
            structure_optimizer: optimizer of the structure logits ρ^q, ρ^p (the ``structure``
                phase); defaults to Adam with the config's ``structure_learning.learning_rate``
                (1e-2 unless set).
            critic_optimizer: optimizer of each critic (one copy per ``critic:<term>`` phase);
                defaults to Adam with the config's ``optimizers.critic`` settings (Adam(2e-4,
                beta_1=0.5) unless set), the usual GAN discriminator setting.
            **kwargs: passed to `keras.Model.compile` (``run_eagerly``, ``jit_compile``, ...);
                ``steps_per_execution`` defaults to the config's (1 unless set).
        """
        kwargs.setdefault("steps_per_execution", self.model_config.get("steps_per_execution", 1))
        if optimizer is None:
            optimizer = keras.optimizers.Adam(**self.model_config["optimizers"]["dist"])
        super().compile(optimizer=optimizer, **kwargs)
        if structure_optimizer is None:
            structure_optimizer = keras.optimizers.Adam(
                learning_rate=self.model_config["structure_learning"]["learning_rate"])
        self.structure_optimizer = keras.optimizers.get(structure_optimizer)
        self._structure_optimizer_config = keras.optimizers.serialize(self.structure_optimizer)
        if critic_optimizer is None:
            critic_optimizer = keras.optimizers.Adam(**self.model_config["optimizers"]["critic"])
        self._critic_optimizer_config = keras.optimizers.serialize(keras.optimizers.get(critic_optimizer))
        # Keras optimizers are bound to the variables they were built with: one per critic phase.
        self.critic_optimizers = {f"critic:{name}": keras.optimizers.deserialize(self._critic_optimizer_config)
                                  for name in self.critics}

    def get_compile_config(self):
        config = super().get_compile_config() or {}
        if self.structure_optimizer is not None:
            config["structure_optimizer"] = self._structure_optimizer_config
            config["critic_optimizer"] = self._critic_optimizer_config
        return config

    def compile_from_config(self, config):
        config = dict(config)
        structure = config.pop("structure_optimizer", None)
        critic = config.pop("critic_optimizer", None)
        optimizer = keras.optimizers.deserialize(config.pop("optimizer")) if config.get("optimizer") else "adam"
        config = {k: v for k, v in config.items() if k in ("run_eagerly", "jit_compile", "steps_per_execution")}
        self.compile(optimizer=optimizer,
                     structure_optimizer=keras.optimizers.deserialize(structure) if structure else None,
                     critic_optimizer=keras.optimizers.deserialize(critic) if critic else None, **config)
        # Build the optimizers now so that `.keras` loading restores their state (resumable runs).
        self._build_optimizers()

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            for phase in self.phases:
                optimizer = self._phase_optimizer(phase["name"])
                if optimizer is None:
                    raise RuntimeError(f"{self.name}: call compile() before fit()")
                if not optimizer.built:
                    optimizer.build(self.phase_variables(phase["name"]))

    def phase_variables(self, phase_name):
        """The variables that phase ``phase_name`` updates."""
        structure = list(self.structure_masks.trainable_variables)
        if phase_name == "structure":
            return structure
        if phase_name.startswith("critic:") and phase_name[len("critic:"):] in self.critics:
            return self._critic_variables(phase_name[len("critic:"):])
        if phase_name == "dist":
            ids = {id(v) for v in structure}
            for critic in self.critics:
                ids |= {id(v) for v in self._critic_variables(critic)}
            return [v for v in self.trainable_variables if id(v) not in ids]
        raise ValueError(f"{self.name}: phase {phase_name!r} has no variables in this model; phases are "
                         f"{[p['name'] for p in self.phases]}")

    def _critic_variables(self, critic):
        """The critic's variables and those of the auxiliaries that share its trunk."""
        variables = list(self.critics[critic].trainable_variables)
        for term, shared in self.shared_critics.items():
            if shared == critic:
                variables += [v for v in self.auxiliaries[term].trainable_variables
                              if all(v is not w for w in variables)]
        return variables

    def _calls_taken(self):
        """Training calls taken so far: the iteration counts of the phases that take a call per step
        (``"batch": "own"``); a phase that shares its call's minibatch adds none."""
        total = 0
        for phase in self.phases:
            optimizer = self._phase_optimizer(phase["name"])
            if phase.get("batch", "own") == "own" and optimizer is not None and optimizer.built:
                total += int(ops.convert_to_numpy(optimizer.iterations))
        return total

    def _phase_optimizer(self, phase_name):
        if phase_name == "structure":
            return self.structure_optimizer
        if phase_name.startswith("critic:"):
            return self.critic_optimizers.get(phase_name)
        return self.optimizer

    def train_step(self, data):
        """One training call: the active phases' steps in turn on one minibatch (`phase_calls`)."""
        x, present = self._prepare(data, strict=False)
        logs = None
        for k in self._active_phases:
            logs = self._phase_step(self.phases[k]["name"], x, present)
        return logs

    def _phase_step(self, phase, x, present):
        variables = self.phase_variables(phase)
        with tf.GradientTape() as tape:
            fp = self.forward(x, present, training=True, phase=phase)
            if phase.startswith("critic:"):
                term = phase[len("critic:"):]
                objective = self.critic_objective(fp, term)
                terms, totals = {f"{term}_critic": objective}, None
            else:
                terms, totals = self.compute_terms(fp)
                objective = totals["score"] if phase == "structure" else totals["loss"]
                # c_t on the network updates' optimized objective only: the logs stay L, and the
                # structure phase's score (its own optimizer, its own scale) is not IRM's loss.
                if self.loss_schedule is not None and phase != "structure":
                    objective = objective * self.loss_schedule(self.optimizer.iterations)
            # Gradients are summed over replicas: scale so that they average instead.
            scaled = objective / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(scaled, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self._phase_optimizer(phase).apply_gradients(pairs)
        if phase == "structure":
            self.structure_masks.advance()
        return self._update_trackers(terms, totals)

    def test_step(self, data):
        x, present = self._prepare(data, strict=False)
        fp = self.forward(x, present, training=False, seed=self.seed_generator)
        terms, totals = self.compute_terms(fp)
        for name in self.critics:
            terms[f"{name}_critic"] = self.critic_objective(fp, name)
        return self._update_trackers(terms, totals)

    def phases_at(self, position):
        """The phase indices that training call ``position`` (0-based) runs, in order, on its
        minibatch: Algorithm 1's round robin over `phase_calls`, among the phases that have started; a
        phase with ``"start": S`` takes no part before call S, and until then the others take its
        turns (mib_mm's structure phase waits one epoch so that the structure is judged on networks
        that have learned to use its edges; docs/mib_mm.md). A function of the position alone, so a
        resumed run continues the same sequence."""
        calls = self._started_calls(position)
        return calls[position % len(calls)]

    def _started_calls(self, position):
        """`phase_calls` with the phases that have not started by call ``position`` left out."""
        calls = [tuple(k for k in call if self.phases[k].get("start", 0) <= position)
                 for call in self._call_schedule]
        return [call for call in calls if call]

    def make_train_function(self, force=False):
        """One compiled step function per call of `phase_calls`, run in turn as Algorithm 1 prescribes.

        Each function is traced while ``_active_phases`` names its phases, so the phase is a
        Python-level choice: no ``tf.cond`` around ``apply_gradients`` (which would break
        cross-replica updates under ``tf.distribute``). With ``steps_per_execution > 1`` a
        call runs that many steps, each on its own minibatch.
        """
        if self.train_function is not None and not force:
            return self.train_function
        self._build_optimizers()
        if len(self.phases) == 1:
            self._active_phases = (0,)
            super().make_train_function(force=True)
            return self.train_function
        # A model loaded from a checkpoint continues Algorithm 1's alternation where it stopped: its
        # position in the schedule is the number of calls taken, read off the phase optimizers.
        self._schedule_position = self._calls_taken() // max(1, int(self.steps_per_execution))
        # Which phases a call runs changes only when a phase starts: one function per distinct call.
        functions = {}
        for start in sorted({p.get("start", 0) for p in self.phases}):
            for call in self._started_calls(start):
                if call not in functions:
                    self._active_phases = call
                    super().make_train_function(force=True)
                    functions[call] = self.train_function

        def train_function(iterator):
            call = self.phases_at(self._schedule_position)
            self._schedule_position += 1
            self._active_phases = call
            return functions[call](iterator)

        self.train_function = train_function
        return train_function
