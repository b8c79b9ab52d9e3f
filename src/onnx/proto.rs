//! Conversion between ONNX protobuf messages (tract-onnx's generated types) and [`Graph`].

use super::ir::{Attr, DType, Graph, Node, Tensor, TypeInfo};
use anyhow::{anyhow, bail, Context, Result};
use ndarray::{ArrayD, IxDyn};
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use tract_onnx::pb;

/// A declared graph input: element type and dimensions (`None` = symbolic).
#[derive(Clone, Debug)]
pub struct InputDecl {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<Option<usize>>,
    pub dim_names: Vec<String>,
}

/// The graph of a file plus its declared input types (before shapes are fixed).
#[derive(Clone, Debug)]
pub struct RawModel {
    pub graph: Graph,
    pub input_decls: Vec<InputDecl>,
}

/// What reading a file converted or noticed, beyond the graph itself.
#[derive(Clone, Debug, Default)]
pub struct ImportInfo {
    /// The file's `producer_name`.
    pub producer: String,
    /// Initializers and `Constant` outputs stored in a type zerocost computes in another:
    /// tensor name → the file's type ("float16", "bfloat16", "int8", "uint8", …).
    pub stored: HashMap<String, &'static str>,
    /// Graph inputs and outputs declared float16/bfloat16 (read as float32).
    pub half_io: Vec<String>,
    /// `Cast` nodes to float16/bfloat16 turned into casts to float32.
    pub half_casts: usize,
}

/// Reads an ONNX file (and its external-data files, if any).
pub fn read_model(path: &Path) -> Result<RawModel> {
    Ok(read_model_info(path)?.0)
}

/// [`read_model`], with what the reading converted.
pub fn read_model_info(path: &Path) -> Result<(RawModel, ImportInfo)> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let proto = pb::ModelProto::decode(bytes.as_slice())
        .map_err(|e| anyhow!("{} is not a valid ONNX file (protobuf decoding failed: {e})", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    from_model_proto_info(&proto, dir, &path.display().to_string())
}

pub fn from_model_proto(proto: &pb::ModelProto, dir: &Path, source: &str) -> Result<RawModel> {
    Ok(from_model_proto_info(proto, dir, source)?.0)
}

/// ONNX element types that are read into another type (float16 and bfloat16 into float32,
/// the small integers into int32): their name, or None for the types zerocost computes in.
pub fn stored_type_name(code: i32) -> Option<&'static str> {
    Some(match code {
        2 => "uint8",
        3 => "int8",
        4 => "uint16",
        5 => "int16",
        10 => "float16",
        12 => "uint32",
        16 => "bfloat16",
        _ => return None,
    })
}

/// The type a stored type is computed in.
fn computed_type(code: i32) -> Result<DType> {
    match code {
        10 | 16 => Ok(DType::F32),
        2..=5 | 12 => Ok(DType::I32),
        _ => DType::from_onnx(code),
    }
}

/// IEEE half precision bits → f32.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) & 1) as u32;
    let exp = ((h >> 10) & 0x1f) as u32;
    let mant = (h & 0x3ff) as u32;
    let bits = if exp == 0 {
        if mant == 0 {
            sign << 31
        } else {
            // subnormal: value = mant * 2^-24
            let v = mant as f32 * (1.0 / 16_777_216.0);
            return if sign == 1 { -v } else { v };
        }
    } else if exp == 0x1f {
        (sign << 31) | (0xff << 23) | (mant << 13)
    } else {
        (sign << 31) | ((exp + 127 - 15) << 23) | (mant << 13)
    };
    f32::from_bits(bits)
}

/// bfloat16 bits → f32.
pub fn bf16_to_f32(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

pub fn from_model_proto_info(proto: &pb::ModelProto, dir: &Path, source: &str) -> Result<(RawModel, ImportInfo)> {
    let mut info = ImportInfo { producer: proto.producer_name.clone(), ..Default::default() };
    let gp = proto
        .graph
        .as_ref()
        .ok_or_else(|| anyhow!("{source} is not a valid ONNX model: it has no graph"))?;
    if gp.node.is_empty() && gp.output.is_empty() {
        bail!("{source} is not a valid ONNX model: its graph is empty");
    }
    let opset = proto
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .unwrap_or(1);
    let mut g = Graph { name: gp.name.clone(), opset, source: source.to_string(), ..Graph::default() };
    for t in &gp.initializer {
        let tensor = tensor_from_proto(t, dir).with_context(|| format!("{source}: initializer '{}'", t.name))?;
        if let Some(ty) = stored_type_name(t.data_type) {
            info.stored.insert(t.name.clone(), ty);
        }
        g.set_initializer(&t.name, tensor);
    }
    let mut decls = Vec::new();
    for vi in &gp.input {
        if g.initializers.contains_key(&vi.name) {
            continue; // old exporters list initializers as inputs too
        }
        let (dtype, dims, dim_names) = value_info_type(vi).with_context(|| format!("{source}: graph input '{}'", vi.name))?;
        if is_half(vi) {
            info.half_io.push(vi.name.clone());
        }
        g.inputs.push(vi.name.clone());
        decls.push(InputDecl { name: vi.name.clone(), dtype, dims, dim_names });
    }
    g.outputs = gp.output.iter().map(|o| o.name.clone()).collect();
    info.half_io.extend(gp.output.iter().filter(|o| is_half(o)).map(|o| o.name.clone()));
    for (i, np) in gp.node.iter().enumerate() {
        if !(np.domain.is_empty() || np.domain == "ai.onnx") {
            bail!("{source}: node '{}' ({}) is in domain '{}', only the standard ai.onnx operators are supported", np.name, np.op_type, np.domain);
        }
        let name = if np.name.is_empty() { format!("{}_{i}", np.op_type) } else { np.name.clone() };
        let mut node = Node::new(name, np.op_type.clone(), np.input.clone(), np.output.clone());
        for a in &np.attribute {
            if let Some(v) = attr_from_proto(a, dir).with_context(|| format!("{source}: node '{}' attribute '{}'", np.name, a.name))? {
                node.attrs.insert(a.name.clone(), v);
            }
            if np.op_type == "Constant" && a.name == "value" {
                if let Some(ty) = a.t.as_ref().and_then(|t| stored_type_name(t.data_type)) {
                    info.stored.insert(np.output.first().cloned().unwrap_or_default(), ty);
                }
            }
        }
        // a float16/bfloat16 network is computed in float32: its casts to half go to float32
        if np.op_type == "Cast" && matches!(node.attrs.get("to"), Some(Attr::Int(10 | 16))) {
            node.attrs.insert("to".into(), Attr::Int(1));
            info.half_casts += 1;
        }
        g.nodes.push(node);
    }
    g.toposort()?;
    Ok((RawModel { graph: g, input_decls: decls }, info))
}

fn is_half(vi: &pb::ValueInfoProto) -> bool {
    matches!(vi.r#type.as_ref().and_then(|t| t.value.as_ref()), Some(pb::type_proto::Value::TensorType(tt)) if matches!(tt.elem_type, 10 | 16))
}

fn value_info_type(vi: &pb::ValueInfoProto) -> Result<(DType, Vec<Option<usize>>, Vec<String>)> {
    let Some(pb::type_proto::Value::TensorType(tt)) = vi.r#type.as_ref().and_then(|t| t.value.as_ref()) else {
        bail!("not a tensor");
    };
    let dtype = computed_type(tt.elem_type)?;
    let mut dims = Vec::new();
    let mut names = Vec::new();
    if let Some(shape) = &tt.shape {
        for d in &shape.dim {
            match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v > 0 => {
                    dims.push(Some(*v as usize));
                    names.push(String::new());
                }
                Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) => {
                    dims.push(None);
                    names.push(p.clone());
                }
                _ => {
                    dims.push(None);
                    names.push("?".into());
                }
            }
        }
    }
    Ok((dtype, dims, names))
}

fn attr_from_proto(a: &pb::AttributeProto, dir: &Path) -> Result<Option<Attr>> {
    use pb::attribute_proto::AttributeType as T;
    let ty = T::try_from(a.r#type).unwrap_or(T::Undefined);
    Ok(Some(match ty {
        T::Float => Attr::Float(a.f),
        T::Int => Attr::Int(a.i),
        T::String => Attr::Str(String::from_utf8_lossy(&a.s).into_owned()),
        T::Tensor => Attr::Tensor(tensor_from_proto(a.t.as_ref().ok_or_else(|| anyhow!("empty tensor"))?, dir)?),
        T::Floats => Attr::Floats(a.floats.clone()),
        T::Ints => Attr::Ints(a.ints.clone()),
        T::Graph | T::Graphs => bail!("sub-graphs (If/Loop/Scan) are not supported"),
        _ => return Ok(None),
    }))
}

/// Decodes a TensorProto, reading external data relative to `dir`.
pub fn tensor_from_proto(t: &pb::TensorProto, dir: &Path) -> Result<Tensor> {
    if stored_type_name(t.data_type).is_some() {
        return narrow_tensor_from_proto(t, dir);
    }
    let dtype = DType::from_onnx(t.data_type)?;
    let (shape, n, raw) = shape_and_bytes(t, dir)?;
    let s = IxDyn(&shape);
    let bad = || anyhow!("tensor data holds the wrong number of elements for shape {shape:?}");
    let tensor = match raw {
        Some(bytes) => {
            if Some(bytes.len()) != n.checked_mul(dtype.width()) {
                return Err(bad());
            }
            match dtype {
                DType::F32 => Tensor::F32(ArrayD::from_shape_vec(s, bytes.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())?),
                DType::F64 => Tensor::F64(ArrayD::from_shape_vec(s, bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())?),
                DType::I64 => Tensor::I64(ArrayD::from_shape_vec(s, bytes.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect())?),
                DType::I32 => Tensor::I32(ArrayD::from_shape_vec(s, bytes.chunks_exact(4).map(|c| i32::from_le_bytes(c.try_into().unwrap())).collect())?),
                DType::Bool => Tensor::Bool(ArrayD::from_shape_vec(s, bytes.iter().map(|&b| b != 0).collect())?),
            }
        }
        None => match dtype {
            DType::F32 => Tensor::F32(ArrayD::from_shape_vec(s, t.float_data.clone()).map_err(|_| bad())?),
            DType::F64 => Tensor::F64(ArrayD::from_shape_vec(s, t.double_data.clone()).map_err(|_| bad())?),
            DType::I64 => Tensor::I64(ArrayD::from_shape_vec(s, t.int64_data.clone()).map_err(|_| bad())?),
            DType::I32 => Tensor::I32(ArrayD::from_shape_vec(s, t.int32_data.clone()).map_err(|_| bad())?),
            DType::Bool => Tensor::Bool(ArrayD::from_shape_vec(s, t.int32_data.iter().map(|&x| x != 0).collect()).map_err(|_| bad())?),
        },
    };
    Ok(tensor)
}

/// A tensor's shape, element count and raw little-endian bytes (from the external file or
/// `raw_data`; None where the values are in the typed fields).
fn shape_and_bytes(t: &pb::TensorProto, dir: &Path) -> Result<(Vec<usize>, usize, Option<Vec<u8>>)> {
    let shape: Vec<usize> = t.dims.iter().map(|&d| usize::try_from(d).map_err(|_| anyhow!("negative dimension {d}"))).collect::<Result<_>>()?;
    let n = usize::try_from(crate::memory::elements(&shape)).map_err(|_| anyhow!("shape {shape:?} has too many elements"))?;
    let external = t.data_location == Some(pb::tensor_proto::DataLocation::External as i32);
    let raw = if external {
        Some(read_external(t, dir)?)
    } else if !t.raw_data.is_empty() {
        Some(t.raw_data.clone())
    } else {
        None
    };
    Ok((shape, n, raw))
}

/// A float16/bfloat16 tensor read as float32, a small-integer one as int32 (exactly).
fn narrow_tensor_from_proto(t: &pb::TensorProto, dir: &Path) -> Result<Tensor> {
    let code = t.data_type;
    let width = match code {
        2 | 3 => 1,
        4 | 5 | 10 | 16 => 2,
        _ => 4,
    };
    let (shape, n, raw) = shape_and_bytes(t, dir)?;
    crate::memory::check(format!("tensor '{}' {shape:?} read as 32-bit", t.name), (n as u128).saturating_mul(4))?;
    // the raw little-endian words, or the values ONNX keeps in int32_data (uint32: uint64_data)
    let words: Vec<u32> = match raw {
        Some(bytes) => {
            if Some(bytes.len()) != n.checked_mul(width) {
                bail!("tensor data holds the wrong number of elements for shape {shape:?}");
            }
            match width {
                1 => bytes.iter().map(|&b| b as u32).collect(),
                2 => bytes.chunks_exact(2).map(|c| u16::from_le_bytes([c[0], c[1]]) as u32).collect(),
                _ => bytes.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect(),
            }
        }
        None if code == 12 => t.uint64_data.iter().map(|&x| x as u32).collect(),
        None => t.int32_data.iter().map(|&x| x as u32).collect(),
    };
    if words.len() != n {
        bail!("tensor data holds the wrong number of elements for shape {shape:?}");
    }
    let s = IxDyn(&shape);
    Ok(match code {
        10 => Tensor::F32(ArrayD::from_shape_vec(s, words.iter().map(|&w| f16_to_f32(w as u16)).collect())?),
        16 => Tensor::F32(ArrayD::from_shape_vec(s, words.iter().map(|&w| bf16_to_f32(w as u16)).collect())?),
        3 => Tensor::I32(ArrayD::from_shape_vec(s, words.iter().map(|&w| w as u8 as i8 as i32).collect())?),
        5 => Tensor::I32(ArrayD::from_shape_vec(s, words.iter().map(|&w| w as u16 as i16 as i32).collect())?),
        2 => Tensor::I32(ArrayD::from_shape_vec(s, words.iter().map(|&w| (w & 0xff) as i32).collect())?),
        4 => Tensor::I32(ArrayD::from_shape_vec(s, words.iter().map(|&w| (w & 0xffff) as i32).collect())?),
        _ => Tensor::I32(ArrayD::from_shape_vec(s, words.iter().map(|&w| i32::try_from(w).unwrap_or(i32::MAX)).collect())?),
    })
}

fn read_external(t: &pb::TensorProto, dir: &Path) -> Result<Vec<u8>> {
    let get = |k: &str| t.external_data.iter().find(|e| e.key == k).map(|e| e.value.clone());
    let location = get("location").ok_or_else(|| anyhow!("external data without a location"))?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, std::path::Component::ParentDir)) {
        bail!("external data location '{location}' must be a relative path inside the model's folder");
    }
    let path = dir.join(rel);
    let offset: u64 = get("offset").map(|v| v.parse()).transpose().context("external data offset")?.unwrap_or(0);
    let length: Option<u64> = get("length").map(|v| v.parse()).transpose().context("external data length")?;
    let size = std::fs::metadata(&path).with_context(|| format!("cannot read external data file {}", path.display()))?.len();
    let end = match length {
        Some(l) => offset.checked_add(l).ok_or_else(|| anyhow!("external data offset {offset} + length {l} overflows"))?,
        None => size,
    };
    if end > size || offset > end {
        bail!("external data file {} is shorter than the tensor needs ({size} < {end} bytes)", path.display());
    }
    // only the tensor's own bytes are read, after the size is known to be affordable
    crate::memory::check(format!("external data of {} ({})", t.name, path.display()), (end - offset) as u128)?;
    use std::io::{Read, Seek};
    let mut f = std::fs::File::open(&path).with_context(|| format!("cannot read external data file {}", path.display()))?;
    f.seek(std::io::SeekFrom::Start(offset))?;
    let mut data = vec![0u8; (end - offset) as usize];
    f.read_exact(&mut data).with_context(|| format!("cannot read external data file {}", path.display()))?;
    Ok(data)
}

pub fn tensor_to_proto(name: &str, t: &Tensor) -> pb::TensorProto {
    let mut p = pb::TensorProto {
        name: name.to_string(),
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: t.dtype().onnx_code(),
        ..Default::default()
    };
    p.raw_data = match t {
        Tensor::F32(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Tensor::F64(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Tensor::I64(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Tensor::I32(a) => a.iter().flat_map(|x| x.to_le_bytes()).collect(),
        Tensor::Bool(a) => a.iter().map(|&x| x as u8).collect(),
    };
    p
}

fn value_info(name: &str, info: Option<&TypeInfo>) -> pb::ValueInfoProto {
    let r#type = info.map(|i| pb::TypeProto {
        denotation: String::new(),
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
            elem_type: i.dtype.onnx_code(),
            shape: Some(pb::TensorShapeProto {
                dim: i
                    .shape
                    .iter()
                    .map(|&d| pb::tensor_shape_proto::Dimension {
                        denotation: String::new(),
                        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d as i64)),
                    })
                    .collect(),
            }),
        })),
    });
    pb::ValueInfoProto { name: name.to_string(), r#type, ..Default::default() }
}

fn attr_to_proto(name: &str, a: &Attr) -> pb::AttributeProto {
    use pb::attribute_proto::AttributeType as T;
    let mut p = pb::AttributeProto { name: name.to_string(), ..Default::default() };
    match a {
        Attr::Int(i) => {
            p.r#type = T::Int as i32;
            p.i = *i;
        }
        Attr::Float(f) => {
            p.r#type = T::Float as i32;
            p.f = *f;
        }
        Attr::Ints(v) => {
            p.r#type = T::Ints as i32;
            p.ints = v.clone();
        }
        Attr::Floats(v) => {
            p.r#type = T::Floats as i32;
            p.floats = v.clone();
        }
        Attr::Str(s) => {
            p.r#type = T::String as i32;
            p.s = s.as_bytes().to_vec();
        }
        Attr::Tensor(t) => {
            p.r#type = T::Tensor as i32;
            p.t = Some(tensor_to_proto("", t));
        }
    }
    p
}

/// Builds an ONNX model (opset `graph.opset`, IR version 8) from a graph with known types.
pub fn to_model_proto(g: &Graph) -> pb::ModelProto {
    let graph = pb::GraphProto {
        name: if g.name.is_empty() { "zerocost".into() } else { g.name.clone() },
        node: g
            .nodes
            .iter()
            .map(|n| pb::NodeProto {
                name: n.name.clone(),
                op_type: n.op.clone(),
                input: n.inputs.clone(),
                output: n.outputs.clone(),
                attribute: n.attrs.iter().map(|(k, v)| attr_to_proto(k, v)).collect(),
                ..Default::default()
            })
            .collect(),
        initializer: g.initializers.iter().map(|(k, t)| tensor_to_proto(k, t)).collect(),
        input: g.inputs.iter().map(|i| value_info(i, g.types.get(i))).collect(),
        output: g.outputs.iter().map(|o| value_info(o, g.types.get(o))).collect(),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: g.opset }],
        producer_name: "zerocost".into(),
        producer_version: env!("CARGO_PKG_VERSION").into(),
        graph: Some(graph),
        ..Default::default()
    }
}

/// Writes `g` as an ONNX file, its composite ops lowered to standard ONNX and the nodes no
/// output needs left out.
pub fn write_model(g: &Graph, path: &Path) -> Result<()> {
    let bytes = to_model_proto(&super::composite::program_for(g, super::composite::Target::Onnx)?).encode_to_vec();
    std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()))
}
