"""mibzoo: a TensorFlow/Keras zoo of structured latent-variable generative models.

Implements Zhang, Koyama & Ishiguro, "Learning Structured Latent Factors from
Dependent Data: A Generative Model Framework from Information-Theoretic
Perspective", ICML 2020.
"""
from setuptools import find_packages, setup

setup(
    name="mibzoo",
    version="0.1.0",
    description="Structured latent-variable generative models (ICML 2020 MIB framework) as a Keras model zoo",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["mibzoo", "mibzoo.*"]) + ["mibzoo.zoo_configs"],
    # The zoo entries live at the top level (`zoo_configs/`, next to Table 2 in
    # the README) and are installed as package data of `mibzoo.zoo_configs`.
    package_dir={"mibzoo.zoo_configs": "zoo_configs"},
    package_data={"mibzoo.zoo_configs": ["*.json"]},
    include_package_data=True,
    install_requires=[
        "tensorflow>=2.16,<2.22",
        # TFP only imports when tf-keras is installed, although mibzoo never
        # uses tf-keras (no tfp.layers); Keras 3 stays the Keras we build on.
        "tensorflow-probability>=0.24",
        "tf-keras>=2.16",
        "keras>=3.3",
        "tensorflow-datasets>=4.9",
        "numpy>=1.26",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        # TensorFlow 2.21 no longer pulls it in; tf.summary (the TensorBoard logs of
        # `mibzoo train`) needs it.
        "tensorboard>=2.16",
        # Exports write TF Serving warm-up records (PredictionLog protos) and models.config
        # (ModelServerConfig): the Quickstart's main job needs the serving protos.
        "tensorflow-serving-api>=2.16",
        # Linear probes and classifiers on representations (fairness ACC/DEO, latent probes).
        "scikit-learn>=1.3",
        # Imported directly, not only through scikit-learn: InfoGAN's code -> class accuracy
        # (scipy.optimize.linear_sum_assignment) and the fairness probe's thread limit.
        "scipy>=1.10",
        "threadpoolctl>=3.1",
        # JSON of large batches on the REST path: NumPy arrays written without Python lists.
        "orjson>=3.10",
        # Post-import hook that registers mibzoo's Keras classes once keras is imported.
        "wrapt>=1.14",
    ],
    extras_require={
        # SciPy gives the independent reference values (densities, integrals) the math tests
        # compare against.
        # fairlearn: the DEO test compares with its equal_opportunity_difference.
        # pytest-xdist: the default run uses every core (pytest.ini), which keeps it near ten
        # minutes on two; most tests trace small graphs, work for one core each.
        "test": ["pytest>=7", "pytest-xdist>=3.5", "scipy>=1.10", "fairlearn>=0.10"],
        # Kept so that `pip install 'mibzoo[serving]'` from older instructions still works.
        "serving": ["tensorflow-serving-api>=2.16"],
    },
    entry_points={"console_scripts": ["mibzoo=mibzoo.cli:main"]},
)
