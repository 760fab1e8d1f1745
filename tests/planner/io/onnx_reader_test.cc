#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "fixtures/onnx_writer.h"
#include "loraplan/planner/errors.h"
#include "loraplan/planner/readers.h"

namespace loraplan::planner {
namespace {

namespace fs = std::filesystem;
using loraplan::testing::OnnxWriteOptions;
using loraplan::testing::write_onnx_model;
using loraplan::testing::write_onnx_model_raw;

// A tiny llama-shaped model, V=64 C=8, in a few element types.
std::vector<TensorRecord> tiny_model() {
  return {
      {"model.embed_tokens.weight", {64, 8}, DType::kF32, ""},  // 2048 bytes
      {"model.layers.0.self_attn.q_proj.weight", {8, 8}, DType::kBF16, ""},
      {"model.layers.0.mlp.down_proj.weight", {8, 22}, DType::kF16, ""},
      {"model.norm.weight", {8}, DType::kF32, ""},
      {"lm_head.weight", {64, 8}, DType::kF32, ""},  // 2048 bytes, last in file
  };
}

class OnnxReaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::path(::testing::TempDir()) / (std::string("onnx_reader_") + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  void write_text(const std::string& p, const std::string& text) const {
    std::ofstream(p, std::ios::binary) << text;
  }

  // The message of the InputError that reading `p` throws; also checks nothing went to stderr
  // (protobuf logs there when a parse goes wrong in some of its paths).
  std::string error_of(const std::string& p) const {
    ::testing::internal::CaptureStderr();
    std::string message = "no error";
    try {
      read_onnx_tensors(p);
    } catch (const InputError& e) {
      message = e.what();
    }
    EXPECT_EQ(::testing::internal::GetCapturedStderr(), "");
    return message;
  }

  fs::path dir_;
};

void expect_same_tensors(const std::vector<TensorRecord>& got,
                         const std::vector<TensorRecord>& want, const std::string& file) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    SCOPED_TRACE(want[i].name);
    EXPECT_EQ(got[i].name, want[i].name);
    EXPECT_EQ(got[i].shape, want[i].shape);
    EXPECT_EQ(got[i].dtype, want[i].dtype);
    EXPECT_EQ(got[i].file, file);
  }
}

TEST_F(OnnxReaderTest, ReadsEmbeddedInitializers) {
  const std::string p = path("m.onnx");
  write_onnx_model(p, tiny_model());
  expect_same_tensors(read_onnx_tensors(p), tiny_model(), p);
}

TEST_F(OnnxReaderTest, ReadsExternalInitializersAndPointsAtTheDataFile) {
  const std::string p = path("m.onnx");
  write_onnx_model(p, tiny_model(), OnnxWriteOptions{.external_data = true, .location = {}});
  expect_same_tensors(read_onnx_tensors(p), tiny_model(), p + ".data");
  // 2048 + 128 + 352 + 32 + 2048 bytes of weights, none of them in the model file.
  EXPECT_EQ(fs::file_size(p + ".data"), 4608u);
  EXPECT_LT(fs::file_size(p), 1024u);
}

TEST_F(OnnxReaderTest, MapsEveryElementType) {
  const std::vector<DType> all = {DType::kF64,    DType::kF32,    DType::kF16, DType::kBF16,
                                  DType::kF8E4M3, DType::kF8E5M2, DType::kI64, DType::kI32,
                                  DType::kI16,    DType::kI8,     DType::kU64, DType::kU32,
                                  DType::kU16,    DType::kU8,     DType::kBool};
  std::vector<TensorRecord> tensors;
  for (DType t : all) tensors.push_back({"t." + std::string(dtype_name(t)), {3, 2}, t, ""});
  tensors.push_back({"scalar", {}, DType::kF32, ""});
  tensors.push_back({"empty", {0, 5}, DType::kI64, ""});
  const std::string p = path("types.onnx");
  write_onnx_model(p, tensors);
  expect_same_tensors(read_onnx_tensors(p), tensors, p);
}

// Offsets past 2 GiB, where one CodedInputStream would stop: a 3 GiB doc_string (a sparse hole
// on disk) before a model's fields. Protobuf merges concatenated messages, so it is still one
// model, and the doc_string is skipped with lseek rather than read.
TEST_F(OnnxReaderTest, ReadsInitializersPastTwoGiB) {
  const std::string model = path("m.onnx");
  write_onnx_model(model, tiny_model());
  const std::string p = path("big.onnx");
  const uint64_t hole = 3ull << 30;
  {
    std::ofstream out(p, std::ios::binary);
    out << '\x32';  // field 6 (doc_string), length-delimited
    for (uint64_t v = hole; v > 0; v >>= 7) {
      out << static_cast<char>((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));  // varint length
    }
  }
  const uint64_t prefix = fs::file_size(p);  // 1 + 5 bytes of length
  fs::resize_file(p, prefix + hole);
  {
    std::ofstream out(p, std::ios::binary | std::ios::app);
    std::ifstream in(model, std::ios::binary);
    out << in.rdbuf();
  }
  expect_same_tensors(read_onnx_tensors(p), tiny_model(), p);
}

TEST_F(OnnxReaderTest, EmptyFileIsNotAModel) {
  const std::string p = path("empty.onnx");
  write_text(p, "");
  EXPECT_EQ(error_of(p), p + ": not an ONNX model (no graph found)");
}

TEST_F(OnnxReaderTest, TextFileIsNotAModel) {
  const std::string p = path("notes.onnx");
  // 'h' is field 13 as a varint, 'e' its value; 'l' has wire type 4, which ONNX never uses.
  write_text(p, "hello, this is not a model\n");
  EXPECT_EQ(error_of(p), p + ": not an ONNX model (invalid protobuf at byte 2)");
}

TEST_F(OnnxReaderTest, FileCutInTheModelHeaderIsNotAModel) {
  const std::string p = path("m.onnx");
  write_onnx_model(p, tiny_model());
  // Bytes 0-1 hold ir_version, then producer_name "loraplan-tests" (16 bytes with its prefix).
  fs::resize_file(p, 5);
  EXPECT_EQ(error_of(p), p + ": not an ONNX model (truncated at byte 5, before any graph)");
}

TEST_F(OnnxReaderTest, TruncatedFileNamesTheInitializerItBrokeOffIn) {
  const std::string p = path("m.onnx");
  write_onnx_model(p, tiny_model());
  // lm_head.weight's 2048 bytes of raw_data end the file.
  const uint64_t cut = fs::file_size(p) - 1000;
  fs::resize_file(p, cut);
  EXPECT_EQ(error_of(p), p + ": truncated at byte " + std::to_string(cut) +
                             " (inside initializer \"lm_head.weight\")");
}

TEST_F(OnnxReaderTest, MissingExternalDataFile) {
  const std::string p = path("m.onnx");
  write_onnx_model(p, tiny_model(), OnnxWriteOptions{.external_data = true, .location = {}});
  fs::remove(p + ".data");
  EXPECT_EQ(
      error_of(p),
      p + ": initializer \"model.embed_tokens.weight\": external data \"m.onnx.data\" not found");
}

TEST_F(OnnxReaderTest, ExternalDataFileTooShort) {
  const std::string p = path("m.onnx");
  write_onnx_model(p, tiny_model(), OnnxWriteOptions{.external_data = true, .location = {}});
  // 4608 bytes hold all five tensors; lm_head.weight is the last 2048.
  fs::resize_file(p + ".data", 4000);
  EXPECT_EQ(error_of(p), p + ": initializer \"lm_head.weight\": bytes [2560, 4608) lie outside "
                             "external data \"m.onnx.data\" (4000 bytes)");
}

TEST_F(OnnxReaderTest, RawDataShorterThanTheShape) {
  const std::string p = path("m.onnx");
  write_onnx_model_raw(p, {{"w", {2, 3}, 1, std::string(20, '\0')}});  // FLOAT
  EXPECT_EQ(error_of(p), p + ": initializer \"w\": raw_data has 20 bytes, shape [2, 3] x fp32 "
                             "needs 24");
}

TEST_F(OnnxReaderTest, UnsupportedElementTypes) {
  const std::string strings = path("strings.onnx");
  write_onnx_model_raw(strings, {{"vocab", {2}, 8, ""}});  // STRING
  EXPECT_EQ(error_of(strings),
            strings + ": initializer \"vocab\": element type STRING (8) is not supported");
  const std::string int4 = path("int4.onnx");
  write_onnx_model_raw(int4, {{"w", {4, 4}, 22, std::string(8, '\0')}});  // INT4, ONNX 1.16
  EXPECT_EQ(error_of(int4), int4 + ": initializer \"w\": element type INT4 (22) is not supported");
}

TEST_F(OnnxReaderTest, CannotOpen) {
  const std::string missing = path("missing.onnx");
  EXPECT_EQ(error_of(missing), missing + ": cannot open: No such file or directory");
  EXPECT_EQ(error_of(dir_.string()), dir_.string() + ": cannot open: Is a directory");
  EXPECT_EQ(error_of("/dev/null"), "/dev/null: cannot open: not a regular file");
}

}  // namespace
}  // namespace loraplan::planner
