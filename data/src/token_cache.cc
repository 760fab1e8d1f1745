#include "loraplan/data/token_cache.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "loraplan/data/tokenizer.h"
#include "loraplan/planner/content_hash.h"
#include "loraplan/planner/errors.h"

namespace loraplan::data {

namespace fs = std::filesystem;

namespace {

constexpr char kMagic[8] = {'L', 'P', 'T', 'O', 'K', 'v', '1', '\0'};

// The file: this header, then each row's ids and labels (int32, ids first), then the index (one
// RowEntry per row), then the first skipped row's error text.
struct Header {
  char magic[8];
  uint64_t rows;
  uint64_t tokens;  // int32 slots of the token area: 2 per token (id and label)
  uint64_t skipped;
  uint64_t index_offset;    // bytes from the file's start
  uint64_t message_offset;  // bytes from the file's start
  uint64_t message_bytes;
  uint64_t reserved;
};
static_assert(sizeof(Header) == 64);

struct RowEntry {
  uint64_t offset;  // int32 slots from the token area's start
  uint32_t length;  // tokens
  uint32_t kind;    // RowKind
  int64_t row;
  int64_t line;
};
static_assert(sizeof(RowEntry) == 32);

std::string cache_key(const std::string& path, const std::string& tokenizer,
                      const DatasetOptions& o) {
  const std::string parts = "loraplan-tokens-v2\n" + planner::file_hash(path) + "\n" +
                            (tokenizer.empty() ? std::string("no tokenizer") : tokenizer) + "\n" +
                            o.field + "\n" + (o.field_given ? "1" : "0") + "\n" +
                            std::to_string(o.vocab) + "\n" + (o.skip_bad_rows ? "1" : "0");
  return planner::content_hash(parts);
}

// Writes all of `bytes` at the file's current position; false on an error.
bool write_all(int fd, const void* bytes, size_t n) {
  const char* p = static_cast<const char*>(bytes);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Tokenizes `path` into `file` (a temporary name renamed into place when complete).
void build(const std::string& path, const Tokenizer* tokenizer, DatasetOptions o,
           const fs::path& file) {
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  std::string temp = (file.parent_path() / ".tmp-XXXXXX").string();
  const int fd = ::mkstemp(temp.data());
  if (fd < 0)
    throw InputError(file.parent_path().string() +
                     ": cannot write the token cache: " + std::strerror(errno));
  bool ok = true;
  const auto fail_write = [&] {  // the catch below closes and removes the temporary file
    throw InputError(temp + ": cannot write the token cache: " + std::strerror(errno));
  };
  try {
    Header h{};
    std::memcpy(h.magic, kMagic, sizeof kMagic);
    if (!write_all(fd, &h, sizeof h)) fail_write();
    std::vector<RowEntry> index;
    uint64_t slots = 0;
    o.seq_len = 0;  // kept whole: cut when read
    const DatasetSummary s = for_each_sample(path, tokenizer, o, [&](Sample&& sample) {
      const auto n = static_cast<uint32_t>(sample.ids.size());
      ok = ok && write_all(fd, sample.ids.data(), n * sizeof(int32_t)) &&
           write_all(fd, sample.labels.data(), n * sizeof(int32_t));
      index.push_back({slots, n, static_cast<uint32_t>(sample.kind), sample.row, sample.line});
      slots += 2 * uint64_t{n};
    });
    if (!ok) fail_write();
    h.rows = index.size();
    h.tokens = slots;
    h.skipped = static_cast<uint64_t>(s.skipped);
    h.index_offset = sizeof(Header) + slots * sizeof(int32_t);
    h.message_offset = h.index_offset + index.size() * sizeof(RowEntry);
    h.message_bytes = s.first_skipped.size();
    if (!write_all(fd, index.data(), index.size() * sizeof(RowEntry)) ||
        !write_all(fd, s.first_skipped.data(), s.first_skipped.size()) ||
        ::lseek(fd, 0, SEEK_SET) != 0 || !write_all(fd, &h, sizeof h)) {
      fail_write();
    }
  } catch (...) {
    ::close(fd);
    ::unlink(temp.c_str());
    throw;
  }
  ::close(fd);
  if (std::rename(temp.c_str(), file.c_str()) != 0) {
    ::unlink(temp.c_str());
    throw InputError(file.string() + ": cannot write the token cache: " + std::strerror(errno));
  }
}

// A cache file mapped read-only; invalid() when it is not one this version wrote whole.
class Mapped {
 public:
  explicit Mapped(const fs::path& file) {
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
        st.st_size >= static_cast<off_t>(sizeof(Header))) {
      size_ = static_cast<size_t>(st.st_size);
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p != MAP_FAILED) data_ = static_cast<const char*>(p);
    }
    ::close(fd);
  }
  ~Mapped() {
    if (data_) ::munmap(const_cast<char*>(data_), size_);
  }
  Mapped(const Mapped&) = delete;
  Mapped& operator=(const Mapped&) = delete;

  // The header, or nullptr when the file's layout does not hold together.
  const Header* header() const {
    if (!data_) return nullptr;
    const auto* h = reinterpret_cast<const Header*>(data_);
    if (std::memcmp(h->magic, kMagic, sizeof kMagic) != 0) return nullptr;
    const uint64_t max_rows = size_ / sizeof(RowEntry), max_slots = size_ / sizeof(int32_t);
    if (h->rows > max_rows || h->tokens > max_slots) return nullptr;
    if (h->index_offset != sizeof(Header) + h->tokens * sizeof(int32_t)) return nullptr;
    if (h->message_offset != h->index_offset + h->rows * sizeof(RowEntry)) return nullptr;
    if (h->message_bytes > size_ || h->message_offset + h->message_bytes != size_) return nullptr;
    return h;
  }
  const char* data() const { return data_; }
  // Lets the kernel drop the pages of [0, end) already read, so that replaying a large cache keeps
  // a bounded resident set (the file's pages are reread if ever touched again).
  void release_before(size_t end) const {
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t cut = end / page * page;
    if (cut > released_) {
      ::madvise(const_cast<char*>(data_) + released_, cut - released_, MADV_DONTNEED);
      released_ = cut;
    }
  }

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
  mutable size_t released_ = 0;
};

// Replays a valid cache file; false (nothing called) when its entries do not hold together.
bool replay(const Mapped& m, const DatasetOptions& o, const std::function<void(Sample&&)>& sample,
            DatasetSummary& summary) {
  const Header& h = *m.header();
  const auto* tokens = reinterpret_cast<const int32_t*>(m.data() + sizeof(Header));
  const auto* index = reinterpret_cast<const RowEntry*>(m.data() + h.index_offset);
  for (uint64_t i = 0; i < h.rows; ++i) {  // every entry checked before any is used
    const RowEntry& e = index[i];
    if (e.length == 0 || e.offset > h.tokens || 2 * uint64_t{e.length} > h.tokens - e.offset ||
        e.kind > static_cast<uint32_t>(RowKind::kMessages)) {
      return false;
    }
  }
  summary = {};
  summary.skipped = static_cast<int64_t>(h.skipped);
  summary.first_skipped.assign(m.data() + h.message_offset, h.message_bytes);
  for (uint64_t i = 0; i < h.rows; ++i) {
    const RowEntry& e = index[i];
    Sample s;
    s.row = e.row;
    s.line = e.line;
    s.kind = static_cast<RowKind>(e.kind);
    s.full_length = e.length;
    size_t n = e.length;
    if (o.seq_len > 0 && static_cast<int64_t>(n) > o.seq_len) {
      ++summary.truncated;
      summary.truncated_tokens += static_cast<int64_t>(n) - o.seq_len;
      n = static_cast<size_t>(o.seq_len);
    }
    const int32_t* ids = tokens + e.offset;
    s.ids.assign(ids, ids + n);
    s.labels.assign(ids + e.length, ids + e.length + n);
    ++summary.rows;
    sample(std::move(s));
    constexpr size_t kReleaseEvery = size_t{64} << 20;  // bytes of tokens read
    const size_t read_to = sizeof(Header) + (e.offset + 2 * uint64_t{e.length}) * sizeof(int32_t);
    if (read_to % kReleaseEvery < 2 * uint64_t{e.length} * sizeof(int32_t))
      m.release_before(read_to);
  }
  return true;
}

}  // namespace

std::string default_cache_dir() {
  if (const char* d = std::getenv("LORAPLAN_CACHE"); d && *d) return d;
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x)
    return (fs::path(x) / "loraplan").string();
  if (const char* home = std::getenv("HOME"); home && *home) {
    return (fs::path(home) / ".cache" / "loraplan").string();
  }
  return "";
}

DatasetSummary for_each_cached_sample(const std::string& path,
                                      const std::string& tokenizer_fingerprint,
                                      const std::function<const Tokenizer*()>& tokenizer,
                                      const DatasetOptions& options, const std::string& cache_dir,
                                      const std::function<void(Sample&&)>& sample, bool* hit) {
  if (hit) *hit = false;
  if (cache_dir.empty()) return for_each_sample(path, tokenizer(), options, sample);
  std::error_code ec;
  if (fs::is_directory(path, ec)) throw InputError(path + ": is a folder, not a data file");
  const fs::path file =
      fs::path(cache_dir) / "tokens" / (cache_key(path, tokenizer_fingerprint, options) + ".bin");
  DatasetSummary summary;
  {
    const Mapped cached(file);
    if (cached.header() && replay(cached, options, sample, summary)) {
      if (hit) *hit = true;
      return summary;
    }
  }
  build(path, tokenizer(), options, file);
  const Mapped built(file);
  if (!built.header() || !replay(built, options, sample, summary)) {
    throw InputError(file.string() + ": the token cache just written does not read back");
  }
  return summary;
}

}  // namespace loraplan::data
