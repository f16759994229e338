"""Static checks that TF Serving can load and batch a SavedModel version (`check_servable`).

Reads the MetaGraph from ``saved_model.pb`` without loading it: every op a core TensorFlow op
with a CPU kernel, none calling back into Python, no file-system op reachable from a signature,
batch dimensions first, warm-up records that match the signatures.
"""
from pathlib import Path

from mibzoo.serving_contract import (ASSETS_EXTRA, DEFAULT_SIGNATURE, PREDICT_METHOD, SERVE_TAG, WARMUP_FILE,
                                     ServingContractError)
from mibzoo.session_loader import serving_signatures
from mibzoo.warmup import MAX_WARMUP_RECORDS, read_warmup_requests

# Ops that call back into the Python interpreter: the TF Serving binary has no Python.
PY_FUNC_OPS = frozenset({"PyFunc", "PyFuncStateless", "EagerPyFunc"})


def read_meta_graph(export_dir):
    from tensorflow.core.protobuf import saved_model_pb2
    from google.protobuf import text_format

    export_dir = Path(export_dir)
    saved_model = saved_model_pb2.SavedModel()
    if (export_dir / "saved_model.pb").exists():
        saved_model.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    elif (export_dir / "saved_model.pbtxt").exists():
        text_format.Parse((export_dir / "saved_model.pbtxt").read_text(), saved_model)
    else:
        raise ServingContractError(f"{export_dir}: no saved_model.pb; not a SavedModel version")
    for meta_graph in saved_model.meta_graphs:
        if set(meta_graph.meta_info_def.tags) == {SERVE_TAG}:
            return meta_graph
    tags = [sorted(m.meta_info_def.tags) for m in saved_model.meta_graphs]
    raise ServingContractError(
        f"{export_dir}: no MetaGraph tagged exactly {{'{SERVE_TAG}'}} (found {tags}); TF "
        "Serving loads the 'serve' tag set"
    )


# Ops that read, write or list files. A signature must not reach them: TF Serving runs every
# warm-up record at load time and every request afterwards, so such an op would touch the
# server's file system on behalf of whoever wrote the export or sends the request. The
# SavedModel's own saver (SaveV2, RestoreV2, ...) lives outside the signatures and is allowed.
FILE_SYSTEM_OPS = frozenset({
    "ReadFile", "WriteFile", "MatchingFiles", "Save", "SaveV2", "SaveSlices", "Restore", "RestoreV2",
    "RestoreSlice", "MergeV2Checkpoints", "ImmutableConst", "InitializeTableFromTextFile",
    "InitializeTableFromTextFileV2", "WholeFileReader", "WholeFileReaderV2", "TextLineReader",
    "TextLineReaderV2", "TFRecordReader", "TFRecordReaderV2", "FixedLengthRecordReader",
    "FixedLengthRecordReaderV2", "LMDBReader", "TFRecordDataset", "TFRecordDatasetV2", "TextLineDataset",
    "FixedLengthRecordDataset", "FixedLengthRecordDatasetV2", "CSVDataset", "CSVDatasetV2",
    "ExperimentalCSVDataset", "LMDBDataset", "ExperimentalLMDBDataset", "SqlDataset", "ExperimentalSqlDataset",
    "SnapshotDataset", "SnapshotDatasetV2", "SaveDataset", "SaveDatasetV2", "LoadDataset", "DatasetToTFRecord",
    "ExperimentalDatasetToTFRecord", "CreateSummaryFileWriter", "CreateSummaryDbWriter", "WriteSummary",
    "WriteScalarSummary", "WriteHistogramSummary", "WriteImageSummary", "WriteAudioSummary",
    "WriteGraphSummary", "WriteRawProtoSummary", "ImportEvent", "FlushSummaryWriter", "DebugIdentityV2",
    "DebugIdentityV3",
})


def signature_ops(meta_graph):
    """Op types that the signatures of a MetaGraphDef can run (the saver's graph left out).

    Walks back from every signature input and output tensor through the graph and into every
    library function a reached node calls (``PartitionedCall`` attributes, direct function
    calls, functions nested in control flow), counting every op inside a reached function.
    """
    graph = meta_graph.graph_def
    nodes = {node.name: node for node in graph.node}
    functions = {f.signature.name: f for f in graph.library.function}
    pending_nodes = [info.name.split(":")[0] for sig in serving_signatures(meta_graph).values()
                     for infos in (sig.inputs, sig.outputs) for info in infos.values()]
    pending_functions, seen_nodes, seen_functions, ops = [], set(), set(), set()

    def called_functions(node_def):
        names = [node_def.op] if node_def.op in functions else []
        for attr in node_def.attr.values():
            if attr.HasField("func"):
                names.append(attr.func.name)
            names.extend(f.name for f in attr.list.func)
        return names

    while pending_nodes or pending_functions:
        if pending_nodes:
            name = pending_nodes.pop()
            if name in seen_nodes or name not in nodes:
                continue
            seen_nodes.add(name)
            node = nodes[name]
            ops.add(node.op)
            pending_nodes.extend(i.lstrip("^").split(":")[0] for i in node.input)
            pending_functions.extend(called_functions(node))
        else:
            name = pending_functions.pop()
            if name in seen_functions or name not in functions:
                continue
            seen_functions.add(name)
            for node_def in functions[name].node_def:
                ops.add(node_def.op)
                pending_functions.extend(called_functions(node_def))
    return ops - set(functions)


def audit_ops(export_dir):
    """Lists the op types of a version's serving graph, function library included.

    Args:
        export_dir: a version directory.

    Returns:
        The set of op type names (calls of library functions are not op types and are
        left out; the ops inside those functions are in).
    """
    graph_def = read_meta_graph(export_dir).graph_def
    functions = {f.signature.name for f in graph_def.library.function}
    ops = {node.op for node in graph_def.node}
    for function in graph_def.library.function:
        ops.update(node.op for node in function.node_def)
    return ops - functions


def check_servable(export_dir):
    """Checks statically that TF Serving can load and batch a version; raises otherwise.

    Checks: a MetaGraph tagged ``serve``; every op is a registered core TensorFlow op
    with a CPU kernel and none calls back into Python (``py_function``); no signature can
    reach an op that reads or writes files (`FILE_SYSTEM_OPS`); a
    ``serving_default`` signature; every input and output of every signature has a
    leading None batch dimension; warm-up records (if any) name existing signatures and
    their exact inputs.

    Args:
        export_dir: a version directory.

    Returns:
        The sorted list of op types (see `audit_ops`).

    Raises:
        ServingContractError: listing every problem found.
    """
    import tensorflow as tf
    from tensorflow.python.framework import kernels, op_def_registry

    export_dir = Path(export_dir)
    meta_graph = read_meta_graph(export_dir)
    problems = []
    ops = audit_ops(export_dir)
    core_ops = set(dir(tf.raw_ops))
    for op in sorted(ops):
        if op in PY_FUNC_OPS:
            problems.append(
                f"op {op} calls back into Python (tf.py_function / tf.numpy_function); the "
                "TF Serving binary has no Python interpreter"
            )
        elif op not in core_ops or op_def_registry.get(op) is None:
            problems.append(f"op {op} is not a core TensorFlow op (custom op?); TF Serving "
                            "cannot load it")
        else:
            devices = {k.device_type for k in kernels.get_registered_kernels_for_op(op).kernel}
            if not devices & {"CPU", "DEFAULT"}:
                problems.append(f"op {op} has no CPU kernel")
    for op in sorted(signature_ops(meta_graph) & FILE_SYSTEM_OPS):
        problems.append(f"op {op} reads or writes files and a signature can run it; TF Serving would "
                        "execute it at load time (warm-up) and on requests, so it is refused")
    signatures = serving_signatures(meta_graph)
    if DEFAULT_SIGNATURE not in signatures:
        problems.append(
            f"no {DEFAULT_SIGNATURE!r} signature: requests without signature_name would fail"
        )
    for sig_name, sig in sorted(signatures.items()):
        if sig.method_name != PREDICT_METHOD:
            problems.append(
                f"signature {sig_name!r}: method {sig.method_name!r}, expected {PREDICT_METHOD!r}"
            )
        if not sig.inputs:
            problems.append(f"signature {sig_name!r} has no inputs")
        for kind, infos in (("input", sig.inputs), ("output", sig.outputs)):
            for key, info in sorted(infos.items()):
                shape = info.tensor_shape
                if shape.unknown_rank:
                    problems.append(
                        f"signature {sig_name!r}: {kind} {key!r} has unknown rank; give it a "
                        "static rank with a None batch dimension (tf.ensure_shape)"
                    )
                elif not shape.dim or shape.dim[0].size != -1:
                    dims = [d.size for d in shape.dim]
                    problems.append(
                        f"signature {sig_name!r}: {kind} {key!r} has shape {dims}; the first "
                        "dimension must be the None batch dimension (-1)"
                    )
    if (export_dir / ASSETS_EXTRA / WARMUP_FILE).exists():
        try:
            records = read_warmup_requests(export_dir)
        except ImportError:
            records = []  # cannot read them without the protos; the server will
        if len(records) > MAX_WARMUP_RECORDS:
            problems.append(f"{len(records)} warm-up records; TF Serving reads at most "
                            f"{MAX_WARMUP_RECORDS}")
        for i, (sig_name, inputs) in enumerate(records):
            if sig_name not in signatures:
                problems.append(f"warm-up record {i}: unknown signature {sig_name!r}")
            elif set(inputs) != set(signatures[sig_name].inputs):
                problems.append(
                    f"warm-up record {i} ({sig_name}): inputs {sorted(inputs)}, signature "
                    f"expects {sorted(signatures[sig_name].inputs)}"
                )
    if problems:
        raise ServingContractError(
            f"{export_dir} is not servable by TF Serving:\n  - " + "\n  - ".join(problems)
        )
    return sorted(ops)


# --------------------------------------------------------------------------------------
# Graph helpers for seeded signatures
