"""The ops a model graph may hold: pure computation, listed by family.

toolkit/graph/policy.py checks every node against ALLOWED_OPS. The list says what is
allowed, not what is forbidden: an op this list has never heard of is refused. Three
families are allowed only under conditions the policy checks: checkpoint ops (only on
the saver's variables path), PrintV2 (only to stderr, stdout or the log) and calls
(only to functions of the graph's own library).
"""

from __future__ import annotations

# --- the allow-list ----------------------------------------------------------------------

_MATH = """
Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin Asin Asinh Atan Atan2
Atanh BatchMatMul BatchMatMulV2 BatchMatMulV3 Betainc Bucketize Ceil ClipByValue Complex
ComplexAbs Conj Cos Cosh Cross Cumprod Cumsum Digamma Div DivNoNan Einsum Equal Erf Erfc
Erfinv Exp Expm1 Floor FloorDiv FloorMod Greater GreaterEqual Igamma Igammac Imag Inv
IsFinite IsInf IsNan Less LessEqual Lgamma Log Log1p LogicalAnd LogicalNot LogicalOr MatMul
Max Maximum Mean Min Minimum Mod Mul MulNoNan Neg NextAfter NotEqual Pow Prod Real RealDiv
Reciprocal Rint Round Rsqrt Select SelectV2 Sigmoid Sign Sin Sinh Softplus Softsign Sqrt
Square SquaredDifference Sub Sum Tan Tanh TruncateDiv TruncateMod Xdivy Xlog1py Xlogy Zeta
BitwiseAnd BitwiseOr BitwiseXor Invert LeftShift RightShift PopulationCount
EuclideanNorm SegmentSum SegmentMean SegmentMax SegmentMin UnsortedSegmentSum
UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd Range LinSpace
"""
_NN = """
AvgPool AvgPool3D BiasAdd Conv2D Conv3D Conv2DBackpropInput DepthwiseConv2dNative
Dilation2D Elu FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3 FusedPadConv2D
FusedResizeAndPadConv2D L2Loss LRN LeakyRelu LogSoftmax MaxPool MaxPool3D MaxPoolV2
MaxPoolWithArgmax Relu Relu6 Selu Softmax TopKV2 InTopKV2 Gelu
_FusedConv2D _FusedDepthwiseConv2dNative FusedDepthwiseConv2dNative _FusedMatMul
_FusedBatchNormEx Prelu _MklFusedBatchMatMulV2
"""
_ARRAY = """
BatchToSpaceND BroadcastArgs BroadcastTo Cast CheckNumerics CheckNumericsV2 Concat
ConcatV2 ConjugateTranspose Const DepthToSpace Diag DiagPart EmptyTensorList EnsureShape
ExpandDims ExtractImagePatches Fill Gather GatherNd GatherV2 Identity IdentityN
InvertPermutation MatrixBandPart MatrixDiag MatrixDiagPart MatrixDiagV3 MatrixSetDiagV3
MirrorPad OneHot OnesLike Pack Pad PadV2 Placeholder PlaceholderWithDefault PreventGradient
Rank Reshape ResourceGather ReverseV2 ScatterNd Shape ShapeN Size Slice Snapshot
SpaceToBatchND SpaceToDepth Split SplitV Squeeze StopGradient StridedSlice Tile Transpose
Unique Unpack Where ZerosLike Bitcast TensorListFromTensor TensorListGetItem
TensorListReserve TensorListSetItem TensorListStack TensorListLength
TensorListElementShape TensorScatterUpdate TensorScatterAdd ReverseSequence
"""
_IMAGE = """
AdjustContrastv2 AdjustHue AdjustSaturation CropAndResize HSVToRGB RGBToHSV
ImageProjectiveTransformV2 ImageProjectiveTransformV3 ResizeArea ResizeBicubic
ResizeBilinear ResizeNearestNeighbor NonMaxSuppressionV3 NonMaxSuppressionV4
NonMaxSuppressionV5
"""
# Seeded or stateful randomness (augmentation layers, Dropout): no outside effect.
_RANDOM = """
Multinomial RandomGamma RandomShuffle RandomStandardNormal RandomUniform RandomUniformInt
TruncatedNormal RngBitGenerator RngReadAndSkip StatefulStandardNormalV2
StatefulTruncatedNormal StatefulUniform StatefulUniformFullInt StatefulUniformInt
StatelessMultinomial StatelessRandomGetAlg StatelessRandomGetKeyCounter
StatelessRandomGetKeyCounterAlg StatelessRandomNormal StatelessRandomNormalV2
StatelessRandomUniform StatelessRandomUniformFullInt StatelessRandomUniformFullIntV2
StatelessRandomUniformInt StatelessRandomUniformIntV2 StatelessRandomUniformV2
StatelessTruncatedNormal StatelessTruncatedNormalV2
"""
# Calls into the graph's own functions, branches and loops: their bodies are checked too.
_CONTROL = """
Assert Case Enter Exit If LoopCond Merge NextIteration NoOp PartitionedCall
StatefulPartitionedCall StatelessCase StatelessIf StatelessWhile Switch While
"""
# Variables of the model itself (handles are process-local).
_VARIABLES = """
Assign AssignAdd AssignAddVariableOp AssignSub AssignSubVariableOp AssignVariableOp
DestroyResourceOp DisableCopyOnRead ReadVariableOp VarHandleOp VarIsInitializedOp Variable
VariableV2 IsVariableInitialized
"""
# String formatting with no outside effect (the saver builds its file names with them).
_STRINGS = """
AsString ShardedFilename StaticRegexFullMatch StaticRegexReplace StringFormat StringJoin
"""
ALLOWED_OPS: frozenset[str] = frozenset(
    " ".join((_MATH, _NN, _ARRAY, _IMAGE, _RANDOM, _CONTROL, _VARIABLES, _STRINGS)).split()
)

# Checkpoint ops -> the positions of their inputs that name files.
CHECKPOINT_OPS: dict[str, tuple[int, ...]] = {
    "SaveV2": (0,),
    "RestoreV2": (0,),
    "MergeV2Checkpoints": (0, 1),
    "Save": (0,),
    "SaveSlices": (0,),
    "Restore": (0,),
    "RestoreSlice": (0,),
}
PRINT_OPS = ("PrintV2",)
PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})
CALL_OPS = ("PartitionedCall", "StatefulPartitionedCall")


# --- what a refused op does, for the message -----------------------------------------

_REASONS = {
    "reads or writes files": ("File", "ImmutableConst", "Reader", "Summary", "Save", "Restore"),
    "calls Python": ("PyFunc",),
    "talks to the network or other processes": ("Send", "Recv", "Remote", "Collective", "Rpc"),
    "reads a dataset": ("Dataset", "Iterator"),
    "writes debugger output": ("Debug",),
}


def reason(op: str) -> str:
    """What `op` would do, in words, going by its name."""
    for what, words in _REASONS.items():
        if any(word in op for word in words):
            return what
    return "not on the list of pure computation ops"
