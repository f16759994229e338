"""One-line mutations of the math and the run machinery, each with the tests that must catch it.

Each mutation replaces one exact line fragment (it must occur exactly once in its file) in a
copy of the repository, runs the tests named beside it there, and counts the mutation *caught*
when they fail. A surviving mutation means a wrong implementation would pass the default suite:
strengthen the test (docs/testing.md lists the score and what survives, with why).

    python benchmarks/mutations.py                 # every mutation (about half an hour on 2 cores)
    python benchmarks/mutations.py --only C3_sign  # one
    python benchmarks/mutations.py --list
    python benchmarks/mutations.py --check         # each fragment occurs exactly once in its file (no tests run)

The working tree is never modified: mutations are applied in a temporary copy of the files git
tracks (plus untracked, non-ignored ones), with that copy first on the import path.
"""
import argparse
import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Mutation:
    name: str
    file: str
    find: str
    replace: str
    tests: tuple
    what: str


M = Mutation
MUTATIONS = [
    # ----- issue 15: the eight mutations that once slipped through -----------------------------------
    M("resume_from_scratch", "mibzoo/experiment.py", "        model = load_model(checkpoint)\n",
      "        model = build_model(entry, data, settings['overrides'], settings['modality_options'], "
      "settings['seed'], settings['learning_rate'])\n",
      ("tests/test_experiment.py::test_a_resumed_run_starts_from_the_checkpoints_weights_and_optimizer_state",),
      "resuming throws the checkpoint away and starts from a fresh model"),
    M("C3_sign", "mibzoo/objectives/elbo.py",
      "    return aggregate_kl_to_prior(fp.z(), loc, logvar, fp.model.prior_loc, fp.model.prior_logvar)",
      "    return -3 * aggregate_kl_to_prior(fp.z(), loc, logvar, fp.model.prior_loc, fp.model.prior_logvar)",
      ("tests/test_objectives.py::test_beta_vae_table2_row_is_reconstruction_plus_beta_kl",),
      "C3 multiplied by -3 (cancels inside the beta-VAE identity)"),
    M("private_kl_doubled", "mibzoo/forward.py", "        return kl * self.presence(name)",
      "        return 2 * kl * self.presence(name)",
      ("tests/test_objectives.py::test_mib_mm_loss_is_lx_plus_lu_plus_lz_of_eq16",),
      "the private-latent KL counted twice"),
    M("iwae_drops_u_kl", "mibzoo/metrics/likelihood.py",
      "                log_w = log_w + (ops.sum(gaussian_log_density(u, zeros, zeros), -1)",
      "                log_w = log_w + 0 * (ops.sum(gaussian_log_density(u, zeros, zeros), -1)",
      ("tests/test_metrics.py::test_iwae_k1_matches_the_analytic_elbo_of_the_training_objective_on_average",),
      "the IWAE weights lose the private latents' KL"),
    M("sparsity_only_inference", "mibzoo/structure.py",
      "        means = [ops.mean(scales * read(rho)) for rho in self.logits.values()]",
      "        means = [ops.mean(scales * read(self.logits['inference']))]",
      ("tests/test_structure.py::test_expected_hard_masks_and_sparsity",),
      "L_sparsity over M^q only"),
    M("compare_first_seed", "mibzoo/compare_report.py", "    mean = sum(values) / len(values)", "    mean = values[0]",
      ("tests/test_compare.py::test_summary_and_table_are_the_statistics_of_the_seeds",),
      "compare reports the first seed's value as the mean"),
    M("collapsing_parametrization", "mibzoo/model.py",
      "        return eta * ops.exp(logvar), logvar, out[:, 2 * dz:2 * dz + du], out[:, 2 * dz + du:]",
      "        return eta, logvar, out[:, 2 * dz:2 * dz + du], out[:, 2 * dz + du:]",
      ("tests/test_zoo.py::test_posterior_carries_the_class_after_training",),
      "experts emit their mean instead of the precision-weighted mean (the absorbing collapse)"),
    M("german_split_overlaps", "mibzoo/data/tabular.py",
      '    for split, keep in (("train", ~test_mask), ("test", test_mask)):',
      '    for split, keep in (("train", test_mask | ~test_mask), ("test", test_mask)):',
      ("tests/test_data_builders.py::test_german_split_is_fixed_and_disjoint",),
      "German's training split also holds the test rows"),
    # ----- inference: the product of experts (Eq. 12-13) ------------------------------------------
    M("poe_without_prior", "mibzoo/inference.py",
      "    precision = prior_precision + ops.sum(weighted_precision, axis=1)  # [B, D]",
      "    precision = 1e-6 + ops.sum(weighted_precision, axis=1)  # [B, D]",
      ("tests/test_inference.py",), "the prior expert left out of Eq. 13"),
    M("poe_unweighted_means", "mibzoo/inference.py",
      "ops.sum(weighted_precision * expert_loc, axis=1)", "ops.sum(weights * expert_loc, axis=1)",
      ("tests/test_inference.py",), "expert means not weighted by their precisions"),
    M("kl_wrong_variance", "mibzoo/inference.py",
      "    mean_term = ops.square(loc_q - loc_p) * ops.exp(-logvar_p)",
      "    mean_term = ops.square(loc_q - loc_p) * ops.exp(-logvar_q)",
      ("tests/test_inference.py", "tests/test_objectives.py"), "Gaussian KL divides by the wrong variance"),
    M("log_density_constant", "mibzoo/inference.py", "    return -0.5 * (math.log(2.0 * math.pi) + logvar",
      "    return -0.5 * (math.log(math.pi) + logvar",
      ("tests/test_inference.py",), "Gaussian log-density off by a constant"),
    # ----- posterior aggregation (issue 14) ----------------------------------------------------------
    M("moe_with_prior", "mibzoo/aggregation.py",
      "        precision = (1.0 - mask[None]) * prior_precision + precision_i",
      "        precision = prior_precision + precision_i",
      ("tests/test_aggregation.py",), "moe's components are prior x expert instead of the expert alone"),
    M("mixture_weights_ignored", "mibzoo/aggregation.py",
      "        return ops.logsumexp(self.component_log_prob(z) + self.log_weights, axis=-1)",
      "        return ops.logsumexp(self.component_log_prob(z), axis=-1)",
      ("tests/test_aggregation.py",), "the mixture density forgets its weights (absent and prior components count)"),
    M("mopoe_subsets_without_prior", "mibzoo/aggregation.py",
      "    return [s for size in range(1, n + 1) for s in itertools.combinations(range(n), size)]",
      "    return [s for size in range(1, n) for s in itertools.combinations(range(n), size)]",
      ("tests/test_aggregation.py",), "MoPoE leaves out the product of every modality"),
    M("mmvae_self_reconstruction_only", "mibzoo/objectives/elbo.py",
      "                          for name in fp.x), ops.zeros_like(total))",
      "                          for name in fp.x if fp.names.index(name) in subset), ops.zeros_like(total))",
      ("tests/test_aggregation.py",), "MMVAE without cross-generation: each component reconstructs its own modality only"),
    M("mixture_sample_ignores_weights", "mibzoo/aggregation.py",
      "        return ops.one_hot(ops.argmax(self.log_weights + gumbel, axis=-1), k)",
      "        return ops.one_hot(ops.argmax(gumbel, axis=-1), k)",
      ("tests/test_aggregation.py",), "mixture samples pick absent and prior components"),
    # ----- forward pass and objectives ---------------------------------------------------------
    M("cross_kl_reversed", "mibzoo/aggregation.py",
      "            return inference.kl_diagonal_gaussians(self.loc, self.logvar, loc, logvar)",
      "            return inference.kl_diagonal_gaussians(loc, logvar, self.loc, self.logvar)",
      ("tests/test_objectives.py",), "KL(q(z|x_i) || q(z|x)) instead of KL(q(z|x) || q(z|x_i))"),
    M("marginal_uses_joint", "mibzoo/objectives/elbo.py",
      "        return fp.distortion(name, i) + fp.rate(kl + fp.private_kl(name))",
      "        return fp.distortion(name) + fp.rate(kl + fp.private_kl(name))",
      ("tests/test_objectives.py",), "the single-modality ELBO decodes z from the joint posterior"),
    M("gating_ignored", "mibzoo/forward.py", "        gated = z * gate", "        gated = z",
      ("tests/test_inference.py", "tests/test_objectives.py", "tests/test_structure.py"),
      "M^p does not gate the decoder input"),
    M("independence_sign", "mibzoo/objectives/elbo.py",
      "    return ops.mean(fp.kl_to_prior()) - c3_aggregate_kl(fp)",
      "    return ops.mean(fp.kl_to_prior()) + c3_aggregate_kl(fp)",
      ("tests/test_objectives.py",), "D(q || G0) = mean KL + C3"),
    M("per_modality_weight_mean", "mibzoo/model.py",
      "        return ops.sum(value * ops.convert_to_tensor(weight, \"float32\"))",
      "        return ops.mean(value * ops.convert_to_tensor(weight, \"float32\"))",
      ("tests/test_objectives.py",), "per-modality terms averaged instead of summed"),
    # ----- structure ----------------------------------------------------------------------------
    M("relaxation_without_logistic_noise", "mibzoo/structure.py", "                noise = ops.log(u) - ops.log1p(-u)",
      "                noise = ops.log(u)", ("tests/test_structure.py",), "Gumbel-sigmoid noise is not logistic"),
    M("temperature_grows", "mibzoo/structure.py",
      "        tau = self.temperature * ops.exp(-self.anneal_rate * self.structure_steps)",
      "        tau = self.temperature * ops.exp(self.anneal_rate * self.structure_steps)",
      ("tests/test_structure.py",), "the temperature rises instead of annealing"),
    M("hard_mask_threshold", "mibzoo/structure.py", '                out.append(ops.cast(rho > 0.0, "float32"))',
      '                out.append(ops.cast(rho > 1.0, "float32"))', ("tests/test_structure.py",),
      "hard masks threshold at p = 0.73 instead of 0.5"),
    # ----- likelihoods --------------------------------------------------------------------------
    M("softplus_scale", "mibzoo/likelihoods.py", "    return ops.softplus(raw) + MIN_SCALE",
      "    return ops.exp(raw) + MIN_SCALE", ("tests/test_likelihoods.py",), "scale parametrized by exp"),
    M("laplace_is_normal", "mibzoo/likelihoods.py",
      '    family = tfd.Normal if likelihood == "normal" else tfd.Laplace',
      "    family = tfd.Normal", ("tests/test_likelihoods.py",), "Laplace likelihood silently Normal"),
    # ----- estimators ---------------------------------------------------------------------------
    M("mmd_biased", "mibzoo/estimators/mmd.py", "    sxx = ops.sum(kxx) - ops.sum(ops.diagonal(kxx))",
      "    sxx = ops.sum(kxx)", ("tests/estimators/test_mmd.py",), "MMD keeps the diagonal (biased)"),
    M("tc_sign", "mibzoo/estimators/total_correlation.py",
      '"mws")\n    return ops.mean(log_qz - ops.sum(log_qz_marginals, axis=1))',
      '"mws")\n    return ops.mean(ops.sum(log_qz_marginals, axis=1) - log_qz)',
      ("tests/estimators/test_total_correlation.py",), "TC with its sign flipped"),
    M("mine_without_log", "mibzoo/estimators/mine.py", "    return ops.logsumexp(t) - ops.log(n)",
      "    return ops.logsumexp(t) - n", ("tests/estimators/test_mine.py",), "MINE's log-mean-exp off"),
    M("infogan_without_entropy", "mibzoo/estimators/infogan.py",
      "1.0)), 0.0))\n    return entropy + expected_log_q", "1.0)), 0.0))\n    return expected_log_q",
      ("tests/estimators/test_infogan.py",), "the categorical InfoGAN bound without H(c)"),
    M("saturating_generator", "mibzoo/estimators/adversarial.py",
      "    return ops.mean(ops.softplus(-_flat32(fake_logits)))", "    return -ops.mean(ops.softplus(_flat32(fake_logits)))",
      ("tests/estimators/test_adversarial.py",), "the saturating generator loss"),
    # ----- metrics --------------------------------------------------------------------------------
    M("joint_coherence_ignores_offset", "mibzoo/metrics/coherence.py",
      "        common = [(_common.read_classes(samples[m], specs[m], clf) - offsets.get(m, 0)) % classes",
      "        common = [(_common.read_classes(samples[m], specs[m], clf)) % classes",
      ("tests/test_metrics.py",), "MNIST-Plus-1's +1 shift ignored by joint coherence"),
    # ----- multimodal training options and fairness (issues 10 and 11) --------------------------------
    M("likelihood_weight_ignored", "mibzoo/forward.py", "        return nll if weight == 1.0 else weight * nll",
      "        return nll", ("tests/test_training_options.py",), "likelihood_weights silently ignored"),
    M("warmup_half_way", "mibzoo/schedules.py", "        return self.start + (1.0 - self.start) * progress",
      "        return self.start + (1.0 - self.start) * progress * 0.5", ("tests/test_training_options.py",),
      "the KL warm-up stops at half the weight"),
    M("cross_reconstruction_keeps_self", "mibzoo/objectives/elbo.py",
      "for j, source in enumerate(fp.names) if j != i and source in fp.x]",
      "for j, source in enumerate(fp.names) if source in fp.x]",
      ("tests/test_objectives.py",), "DMVAE's cross reconstructions also count the self reconstruction"),
    M("weight_n_off_by_one", "mibzoo/weights.py", '    names = {**hyperparameters, "N": len(modality_names)}',
      '    names = {**hyperparameters, "N": len(modality_names) + 1}', ("tests/test_config.py", "tests/test_objectives.py"),
      "N in weight expressions is not the number of modalities"),
    M("cross_generation_sees_target", "mibzoo/forward.py",
      "        z = self.aggregate(None, self.names.index(name)).sample(self.noise)",
      "        z = self.aggregate().sample(self.noise)",
      ("tests/test_objectives.py",), "cross-generation encodes the modality it should generate"),
    M("deo_uses_all_examples", "mibzoo/metrics/fairness.py",
      "_group_rates(y_pred, sensitive, y_true == 1, ", "_group_rates(y_pred, sensitive, y_true >= 0, ",
      ("tests/test_fairness_metrics.py",), "DEO compares acceptance rates instead of true-positive rates"),
]


def _copy_tree(destination):
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.splitlines()
    for name in listed:
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(mutations, timeout):
    results = []
    with tempfile.TemporaryDirectory(prefix="mibzoo-mutations-") as folder:
        copy = pathlib.Path(folder)
        _copy_tree(copy)
        env = {**os.environ, "PYTHONPATH": str(copy), "TF_CPP_MIN_LOG_LEVEL": "3"}
        for mutation in mutations:
            path = copy / mutation.file
            original = path.read_text(encoding="utf-8")
            count = original.count(mutation.find)
            if count != 1:
                results.append((mutation, "stale", f"the text occurs {count} times in {mutation.file}"))
                print(f"{mutation.name:36s} STALE ({count} occurrences)", flush=True)
                continue
            path.write_text(original.replace(mutation.find, mutation.replace), encoding="utf-8")
            started = time.perf_counter()
            try:
                done = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                                       *mutation.tests], cwd=copy, env=env, capture_output=True, text=True,
                                      timeout=timeout)
                verdict = "caught" if done.returncode != 0 else "SURVIVED"
            except subprocess.TimeoutExpired:
                verdict = "caught"  # a hang is a failure the suite reports
            finally:
                path.write_text(original, encoding="utf-8")
            seconds = time.perf_counter() - started
            results.append((mutation, verdict, f"{seconds:.0f} s"))
            print(f"{mutation.name:36s} {verdict:9s} {seconds:5.0f} s  {mutation.what}", flush=True)
    return results


def check(mutations):
    """``[(mutation, problem)]`` for every mutation whose fragment does not occur exactly once in its
    file of the working tree (a moved or edited line leaves the mutation stale)."""
    problems = []
    for mutation in mutations:
        path = ROOT / mutation.file
        if not path.is_file():
            problems.append((mutation, f"{mutation.file} does not exist"))
            continue
        count = path.read_text(encoding="utf-8").count(mutation.find)
        if count != 1:
            problems.append((mutation, f"the text occurs {count} times in {mutation.file}"))
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", help="names of the mutations to run")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    parser.add_argument("--check", action="store_true",
                        help="only verify that each fragment occurs exactly once in its file, and exit")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per mutation")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTATIONS if not args.only or m.name in args.only]
    unknown = set(args.only or []) - {m.name for m in MUTATIONS}
    if unknown:
        parser.error(f"unknown mutations {sorted(unknown)}; --list shows them")
    if args.list:
        for m in chosen:
            print(f"{m.name:36s} {m.file:38s} {m.what}")
        return 0
    if args.check:
        problems = check(chosen)
        for mutation, problem in problems:
            print(f"STALE {mutation.name}: {problem}")
        print(f"{len(chosen) - len(problems)}/{len(chosen)} fragments found exactly once")
        return 1 if problems else 0
    results = run(chosen, args.timeout)
    caught = sum(verdict == "caught" for _, verdict, _ in results)
    print(f"\nscore: {caught}/{len(results)} caught")
    for mutation, verdict, detail in results:
        if verdict != "caught":
            print(f"  {verdict}: {mutation.name} ({mutation.file}): {mutation.what}; {detail}")
    return 0 if caught == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
