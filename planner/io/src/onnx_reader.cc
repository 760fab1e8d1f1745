// ONNX models: a protobuf ModelProto whose graph holds the weights as initializers. A model file
// with embedded weights is mostly raw_data bytes, so the file is walked field by field over the
// protobuf wire format: the bulk data fields are skipped with lseek and only the few bytes that
// describe each tensor (name, dims, element type, external data) are read and decoded.
#include <fcntl.h>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl.h>
#include <onnx/onnx_pb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>

#include "loraplan/planner/errors.h"
#include "loraplan/planner/inventory.h"
#include "loraplan/planner/paths.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

namespace fs = std::filesystem;
namespace io = google::protobuf::io;

// Field numbers of onnx.proto that the walk looks at; every other field is skipped.
constexpr int kModelIrVersion = 1;
constexpr int kModelGraph = 7;
constexpr int kGraphInitializer = 5;
constexpr int kTensorDims = 1;
constexpr int kTensorDataType = 2;
constexpr int kTensorName = 8;
constexpr int kTensorRawData = 9;
constexpr int kTensorExternalData = 13;
constexpr int kTensorDataLocation = 14;
// float_data, int32_data, string_data, int64_data, double_data, uint64_data.
constexpr int kTensorTypedData[] = {4, 5, 6, 7, 10, 11};

// Protobuf wire types (groups, 3 and 4, are not used by onnx.proto and are rejected).
constexpr uint32_t kWireVarint = 0;
constexpr uint32_t kWireFixed64 = 1;
constexpr uint32_t kWireLen = 2;
constexpr uint32_t kWireFixed32 = 5;

// A name or a shape is a few bytes; a larger kept field means the length is garbage.
constexpr int64_t kMaxKeptFieldBytes = 16 << 20;
// Skips go through CodedInputStream::Skip, which takes an int.
constexpr int64_t kMaxSkipChunkBytes = 1 << 30;
// The end of a top-level field: it has no enclosing message, only the file (checked on reading).
constexpr int64_t kNoEnd = INT64_MAX;

// A failure of the wire walk, turned into an InputError by the parser, which knows where it was.
struct WireError {
  enum class Kind { kTruncated, kInvalid, kRead } kind;
  int64_t offset;  // bytes from the start of the file
  int read_errno = 0;
};

struct Tag {
  int field = 0;
  uint32_t wire_type = 0;
  int64_t offset = 0;  // of the tag's first byte in the file
};

void append_varint(std::string* out, uint64_t v) {
  while (v >= 0x80) {
    out->push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out->push_back(static_cast<char>(v));
}

// A CodedInputStream allowed to read as far as one can (its default limit is lower in older
// protobuf releases).
class Coded : public io::CodedInputStream {
 public:
  explicit Coded(io::ZeroCopyInputStream* file) : io::CodedInputStream(file) {
    SetTotalBytesLimit(INT_MAX);
  }
};

// Protobuf wire primitives at absolute file offsets. Every call builds a fresh CodedInputStream
// over the one FileInputStream: a CodedInputStream counts in int and stops at 2 GiB, a model file
// (with its graph) may be larger, and the FileInputStream keeps the int64 position across streams
// (a CodedInputStream hands its unread buffer back when destroyed). Skips reach lseek.
class WireReader {
 public:
  WireReader(int fd, int64_t size) : file_(fd), size_(size) { file_.SetCloseOnDelete(true); }

  int64_t offset() const { return file_.ByteCount(); }
  int64_t size() const { return size_; }

  Tag read_tag() {
    Tag tag;
    tag.offset = offset();
    const uint64_t v = read_varint();
    tag.field = static_cast<int>(std::min<uint64_t>(v >> 3, INT_MAX));
    tag.wire_type = static_cast<uint32_t>(v & 7);
    const bool known_type = tag.wire_type == kWireVarint || tag.wire_type == kWireFixed64 ||
                            tag.wire_type == kWireLen || tag.wire_type == kWireFixed32;
    if (tag.field == 0 || v >> 3 > 0x1fffffff || !known_type) {
      throw WireError{WireError::Kind::kInvalid, tag.offset};
    }
    return tag;
  }

  uint64_t read_varint() {
    const int64_t start = offset();
    Coded in(&file_);
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      uint8_t byte = 0;
      if (!in.ReadRaw(&byte, 1)) throw end_of_data(start + i);
      v |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if (!(byte & 0x80)) return v;
    }
    throw WireError{WireError::Kind::kInvalid, start};
  }

  // Length of a length-delimited field whose payload starts here; it must end by `end`.
  int64_t read_length(const Tag& tag, int64_t end) {
    const uint64_t len = read_varint();
    if (len > static_cast<uint64_t>(end - offset())) {
      throw WireError{WireError::Kind::kInvalid, tag.offset};
    }
    return static_cast<int64_t>(len);
  }

  // Skips n bytes without reading them (lseek for a regular file).
  void skip(int64_t n) {
    if (n > size_ - offset()) throw WireError{WireError::Kind::kTruncated, size_};
    while (n > 0) {
      const int64_t chunk = std::min(n, kMaxSkipChunkBytes);
      const int64_t start = offset();
      Coded in(&file_);
      if (!in.Skip(static_cast<int>(chunk))) throw end_of_data(start);
      n -= chunk;
    }
  }

  std::string read_bytes(int64_t n) {
    if (n > size_ - offset()) throw WireError{WireError::Kind::kTruncated, size_};
    const int64_t start = offset();
    std::string bytes;
    Coded in(&file_);
    if (!in.ReadString(&bytes, static_cast<int>(n))) throw end_of_data(start);
    return bytes;
  }

  // Skips the payload of a field whose tag was just read.
  void skip_field(const Tag& tag, int64_t end) {
    switch (tag.wire_type) {
      case kWireVarint:
        read_varint();
        return;
      case kWireFixed64:
        skip(8);
        return;
      case kWireFixed32:
        skip(4);
        return;
      default:
        skip(read_length(tag, end));
    }
  }

  // Appends the field (tag and payload, re-encoded) to `out`; returns a LEN field's payload.
  std::string copy_field(const Tag& tag, int64_t end, std::string* out) {
    append_varint(out, (static_cast<uint64_t>(tag.field) << 3) | tag.wire_type);
    switch (tag.wire_type) {
      case kWireVarint:
        append_varint(out, read_varint());
        return {};
      case kWireFixed64:
        out->append(read_bytes(8));
        return {};
      case kWireFixed32:
        out->append(read_bytes(4));
        return {};
      default:
        const int64_t len = read_length(tag, end);
        if (len > kMaxKeptFieldBytes) throw WireError{WireError::Kind::kInvalid, tag.offset};
        std::string payload = read_bytes(len);
        append_varint(out, payload.size());
        out->append(payload);
        return payload;
    }
  }

 private:
  // A read that came back short: the file ended, or the read itself failed.
  WireError end_of_data(int64_t at) {
    if (file_.GetErrno() != 0) return {WireError::Kind::kRead, at, file_.GetErrno()};
    return {WireError::Kind::kTruncated, size_};
  }

  io::FileInputStream file_;
  int64_t size_;  // bytes in the file
};

// ONNX TensorProto.DataType -> DType. FLOAT8E4M3FN (17) and FLOAT8E5M2 (19) are newer than
// the libonnx headers, hence the numbers.
std::optional<DType> onnx_dtype(int32_t t) {
  switch (t) {
    case onnx::TensorProto_DataType_FLOAT:
      return DType::kF32;
    case onnx::TensorProto_DataType_FLOAT16:
      return DType::kF16;
    case onnx::TensorProto_DataType_BFLOAT16:
      return DType::kBF16;
    case onnx::TensorProto_DataType_DOUBLE:
      return DType::kF64;
    case onnx::TensorProto_DataType_INT8:
      return DType::kI8;
    case onnx::TensorProto_DataType_UINT8:
      return DType::kU8;
    case onnx::TensorProto_DataType_INT16:
      return DType::kI16;
    case onnx::TensorProto_DataType_UINT16:
      return DType::kU16;
    case onnx::TensorProto_DataType_INT32:
      return DType::kI32;
    case onnx::TensorProto_DataType_UINT32:
      return DType::kU32;
    case onnx::TensorProto_DataType_INT64:
      return DType::kI64;
    case onnx::TensorProto_DataType_UINT64:
      return DType::kU64;
    case onnx::TensorProto_DataType_BOOL:
      return DType::kBool;
    case 17:
      return DType::kF8E4M3;
    case 19:
      return DType::kF8E5M2;
    default:
      return std::nullopt;
  }
}

std::string onnx_dtype_label(int32_t t) {
  static const std::map<int32_t, std::string> kNewer = {
      {17, "FLOAT8E4M3FN"},   {18, "FLOAT8E4M3FNUZ"}, {19, "FLOAT8E5M2"},
      {20, "FLOAT8E5M2FNUZ"}, {21, "UINT4"},          {22, "INT4"}};
  std::string name;
  if (onnx::TensorProto_DataType_IsValid(t)) {
    name = onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(t));
  } else if (auto it = kNewer.find(t); it != kNewer.end()) {
    name = it->second;
  }
  return name.empty() ? std::to_string(t) : name + " (" + std::to_string(t) + ")";
}

// Decodes one initializer from its kept fields and checks that its bytes are where it says.
class TensorChecker {
 public:
  explicit TensorChecker(const std::string& path)
      : path_(path), dir_(fs::path(path).parent_path()) {}

  struct Walked {
    std::string kept;                       // wire bytes of dims, data_type, name, external data
    std::optional<int64_t> raw_data_bytes;  // length of raw_data when present
    bool has_typed_data = false;            // float_data, int64_data, ...
    int index = 0;                          // position among the initializers, for errors
    int64_t offset = 0;                     // of the initializer in the file, for errors
  };

  TensorRecord check(const Walked& w) {
    onnx::TensorProto proto;
    if (!proto.ParseFromString(w.kept)) {
      fail_at(w.offset, "initializer #" + std::to_string(w.index) + " does not decode");
    }
    TensorRecord t;
    t.name = proto.name();
    if (t.name.empty()) {
      fail_at(w.offset, "initializer #" + std::to_string(w.index) + " has no name");
    }
    t.shape.assign(proto.dims().begin(), proto.dims().end());
    const std::optional<DType> dtype = onnx_dtype(proto.data_type());
    if (!dtype) {
      fail(t, "element type " + onnx_dtype_label(proto.data_type()) + " is not supported");
    }
    t.dtype = *dtype;
    const int64_t need = bytes_needed(t);
    if (proto.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
      check_external(proto, need, &t);
    } else {
      t.file = path_;
      check_embedded(w, need, t);
    }
    return t;
  }

 private:
  [[noreturn]] void fail_at(int64_t offset, const std::string& msg) {
    throw InputError(located(path_, 0, msg + " (at byte " + std::to_string(offset) + ")"));
  }
  [[noreturn]] void fail(const TensorRecord& t, const std::string& msg) {
    throw InputError(located(path_, 0, "initializer \"" + t.name + "\": " + msg));
  }

  std::string shape_and_type(const TensorRecord& t) {
    return "shape " + shape_text(t.shape) + " x " + std::string(dtype_name(t.dtype));
  }

  int64_t bytes_needed(const TensorRecord& t) {
    int64_t bytes = dtype_bytes(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) fail(t, "shape " + shape_text(t.shape) + " has a negative dimension");
      if (__builtin_mul_overflow(bytes, d, &bytes)) {
        fail(t, shape_and_type(t) + " does not fit in 2^63 bytes");
      }
    }
    return bytes;
  }

  void check_embedded(const Walked& w, int64_t need, const TensorRecord& t) {
    if (w.raw_data_bytes) {
      if (*w.raw_data_bytes != need) {
        fail(t, "raw_data has " + std::to_string(*w.raw_data_bytes) + " bytes, " +
                    shape_and_type(t) + " needs " + std::to_string(need));
      }
    } else if (!w.has_typed_data && need > 0) {
      fail(t, "no data, " + shape_and_type(t) + " needs " + std::to_string(need) + " bytes");
    }
  }

  // external_data: {"location": file relative to the model, "offset": bytes, "length": bytes}.
  void check_external(const onnx::TensorProto& proto, int64_t need, TensorRecord* t) {
    std::string location;
    int64_t offset = 0;
    int64_t length = need;
    for (const onnx::StringStringEntryProto& e : proto.external_data()) {
      if (e.key() == "location") location = e.value();
      if (e.key() == "offset") offset = external_number(*t, e);
      if (e.key() == "length") length = external_number(*t, e);
    }
    if (location.empty()) fail(*t, "external data without a \"location\"");
    const std::optional<fs::path> inside = path_inside(dir_, location);
    if (!inside)
      fail(*t, "external data \"" + location + "\" is not a file inside the model's folder");
    t->file = inside->string();
    const int64_t size = external_size(*t, location);
    if (length != need) {
      fail(*t, "external data length " + std::to_string(length) + ", " + shape_and_type(*t) +
                   " needs " + std::to_string(need));
    }
    if (offset > size || length > size - offset) {
      // offset + length may not fit in 64 bits: the end is printed only when it does.
      int64_t end = 0;
      const std::string range =
          __builtin_add_overflow(offset, length, &end)
              ? std::to_string(length) + " bytes from " + std::to_string(offset)
              : "bytes [" + std::to_string(offset) + ", " + std::to_string(end) + ")";
      fail(*t, range + " lie outside external data \"" + location + "\" (" + std::to_string(size) +
                   " bytes)");
    }
  }

  int64_t external_number(const TensorRecord& t, const onnx::StringStringEntryProto& e) {
    const std::string& v = e.value();
    int64_t n = -1;
    const auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
    if (ec != std::errc() || end != v.data() + v.size() || n < 0) {
      fail(t, "external data " + e.key() + " \"" + v + "\" is not a byte count");
    }
    return n;
  }

  // Size of an external data file; looked up once per file.
  int64_t external_size(const TensorRecord& t, const std::string& location) {
    if (auto it = external_sizes_.find(t.file); it != external_sizes_.end()) return it->second;
    std::error_code ec;
    const fs::file_status st = fs::status(t.file, ec);
    if (!fs::exists(st)) fail(t, "external data \"" + location + "\" not found");
    if (!fs::is_regular_file(st)) fail(t, "external data \"" + location + "\" is not a file");
    const int64_t size = static_cast<int64_t>(fs::file_size(t.file, ec));
    if (ec) fail(t, "external data \"" + location + "\": " + ec.message());
    external_sizes_[t.file] = size;
    return size;
  }

  const std::string& path_;
  fs::path dir_;                                   // external locations are relative to it
  std::map<std::string, int64_t> external_sizes_;  // resolved path -> bytes
};

// Walks ModelProto -> graph -> initializers. `where_` names the innermost message being read so
// that a truncated or corrupt file is reported with the initializer it broke off in.
class OnnxWalker {
 public:
  OnnxWalker(const std::string& path, int fd, int64_t size)
      : path_(path), in_(fd, size), checker_(path) {}

  std::vector<TensorRecord> walk() {
    try {
      walk_model();
    } catch (const WireError& e) {
      throw InputError(located(path_, 0, describe(e)));
    }
    if (!graph_found_) throw InputError(located(path_, 0, "not an ONNX model (no graph found)"));
    if (!ir_version_found_) {
      throw InputError(located(path_, 0, "not an ONNX model (no ir_version field)"));
    }
    return std::move(tensors_);
  }

 private:
  std::string describe(const WireError& e) const {
    const std::string at = std::to_string(e.offset);
    if (e.kind == WireError::Kind::kRead) {
      return "read error at byte " + at + ": " + std::strerror(e.read_errno);
    }
    const bool truncated = e.kind == WireError::Kind::kTruncated;
    // Before a graph the bytes may be anything: a text file, a different protobuf.
    if (!graph_found_) {
      return truncated ? "not an ONNX model (truncated at byte " + at + ", before any graph)"
                       : "not an ONNX model (invalid protobuf at byte " + at + ")";
    }
    return (truncated ? "truncated" : "invalid protobuf") + std::string(" at byte ") + at +
           " (inside " + where_ + ")";
  }

  void walk_model() {
    while (in_.offset() < in_.size()) {
      const Tag tag = in_.read_tag();
      if (tag.field == kModelGraph && tag.wire_type == kWireLen) {
        const int64_t len = in_.read_length(tag, kNoEnd);
        graph_found_ = true;
        where_ = "graph";
        walk_graph(in_.offset() + len);
        where_ = "model";
      } else if (tag.field == kModelIrVersion && tag.wire_type == kWireVarint) {
        in_.read_varint();
        ir_version_found_ = true;
      } else {
        in_.skip_field(tag, kNoEnd);
      }
    }
  }

  // A truncated file still declares the graph's full length, so `end` may lie past the end of
  // the file: the walk goes on until a field breaks off, naming the initializer it was in.
  void walk_graph(int64_t end) {
    while (in_.offset() < end) {
      const Tag tag = in_.read_tag();
      if (tag.field == kGraphInitializer && tag.wire_type == kWireLen) {
        const int64_t len = in_.read_length(tag, end);
        tensors_.push_back(checker_.check(walk_initializer(tag.offset, in_.offset() + len)));
        where_ = "graph";
      } else {
        // sparse_initializer (15) included: sparse weights are not planned for.
        in_.skip_field(tag, end);
      }
    }
    if (in_.offset() != end) throw WireError{WireError::Kind::kInvalid, end};
  }

  TensorChecker::Walked walk_initializer(int64_t offset, int64_t end) {
    TensorChecker::Walked w;
    w.index = static_cast<int>(tensors_.size());
    w.offset = offset;
    where_ = "initializer #" + std::to_string(w.index);
    while (in_.offset() < end) {
      const Tag tag = in_.read_tag();
      switch (tag.field) {
        case kTensorName:
          if (tag.wire_type == kWireLen) {
            where_ = "initializer \"" + in_.copy_field(tag, end, &w.kept) + "\"";
            break;
          }
          [[fallthrough]];
        case kTensorDims:
        case kTensorDataType:
        case kTensorExternalData:
        case kTensorDataLocation:
          in_.copy_field(tag, end, &w.kept);
          break;
        case kTensorRawData:
          if (tag.wire_type == kWireLen) {
            const int64_t len = in_.read_length(tag, end);
            w.raw_data_bytes = len;
            in_.skip(len);
            break;
          }
          [[fallthrough]];
        default:
          w.has_typed_data |= std::find(std::begin(kTensorTypedData), std::end(kTensorTypedData),
                                        tag.field) != std::end(kTensorTypedData);
          in_.skip_field(tag, end);
      }
    }
    if (in_.offset() != end) throw WireError{WireError::Kind::kInvalid, offset};
    return w;
  }

  const std::string& path_;
  WireReader in_;
  TensorChecker checker_;
  std::string where_;  // "graph", "initializer \"name\"", "model" (after the graph)
  bool graph_found_ = false;
  bool ir_version_found_ = false;
  std::vector<TensorRecord> tensors_;
};

}  // namespace

std::vector<TensorRecord> read_onnx_tensors(const std::string& path) {
  auto cannot_open = [&](const std::string& why) {
    return InputError(located(path, 0, "cannot open: " + why));
  };
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw cannot_open(std::strerror(errno));
  struct stat st {};
  const bool stat_ok = ::fstat(fd, &st) == 0;
  const int stat_errno = errno;
  if (!stat_ok || !S_ISREG(st.st_mode)) {
    ::close(fd);
    // The walk needs the file size and lseek: a pipe or a device will not do.
    if (!stat_ok) throw cannot_open(std::strerror(stat_errno));
    throw cannot_open(S_ISDIR(st.st_mode) ? std::strerror(EISDIR) : "not a regular file");
  }
  return OnnxWalker(path, fd, st.st_size).walk();
}

}  // namespace loraplan::planner
