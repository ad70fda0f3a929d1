// Replays the saved fuzz inputs through the fuzz targets (fuzz/fuzz_targets.h), built with the
// ordinary compiler and without libFuzzer: every seed of fuzz/corpus/<target>/ and every input of
// fuzz/regressions/<target>/ that once crashed or hung. A target that fails an invariant traps,
// which kills this test binary; one that crashes does the same.
#include "fuzz/fuzz_targets.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace taskpipe::fuzz {
namespace {

namespace fs = std::filesystem;

// The regular files under `dir`, sorted so that failures are reproducible; empty if it is absent.
std::vector<fs::path> InputsIn(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::is_directory(dir)) return files;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(dir)) {
    if (entry.is_regular_file()) files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::uint8_t> ReadBytes(const fs::path& path) {
  std::vector<char> bytes(fs::file_size(path));
  std::ifstream in(path, std::ios::binary);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return std::vector<std::uint8_t>(bytes.begin(), bytes.end());
}

// Feeds each file to the target, as exactly its bytes (a vector of that size, so that ASan builds
// of this test catch reads past the end as libFuzzer would).
void Replay(const FuzzTarget& target, const std::vector<fs::path>& files) {
  for (const fs::path& file : files) {
    SCOPED_TRACE(file.string());
    const std::vector<std::uint8_t> data = ReadBytes(file);
    EXPECT_EQ(target.fn(data.data(), data.size()), 0);
  }
}

class FuzzRegressionTest : public ::testing::TestWithParam<FuzzTarget> {};

TEST_P(FuzzRegressionTest, ReplaysSeedCorpusAndRegressions) {
  const FuzzTarget& target = GetParam();
  const fs::path fuzz_dir = fs::path(TASKPIPE_SOURCE_DIR) / "fuzz";
  const fs::path corpus = fuzz_dir / "corpus" / target.name;
  // Without seeds this test would pass vacuously.
  ASSERT_TRUE(fs::is_directory(corpus)) << corpus << " is missing";
  const std::vector<fs::path> seeds = InputsIn(corpus);
  ASSERT_FALSE(seeds.empty()) << corpus << " holds no inputs";
  Replay(target, seeds);
  // fuzz/regressions/<target>/ exists only once the target has found something.
  Replay(target, InputsIn(fuzz_dir / "regressions" / target.name));
}

TEST(FuzzTargetsTest, NamesAreDistinctAndEveryTargetAcceptsEmptyAndShortInputs) {
  std::vector<std::string> names;
  for (const FuzzTarget& target : AllFuzzTargets()) {
    names.emplace_back(target.name);
    SCOPED_TRACE(target.name);
    const std::uint8_t bytes[] = {0xff, 0x00, 0x7f, 0x80, 0x0a, 0x7b};
    for (std::size_t size = 0; size <= sizeof bytes; ++size) EXPECT_EQ(target.fn(bytes, size), 0);
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::adjacent_find(names.begin(), names.end()), names.end());
  EXPECT_EQ(names.size(), 6u);
}

INSTANTIATE_TEST_SUITE_P(AllTargets, FuzzRegressionTest, ::testing::ValuesIn(AllFuzzTargets()),
                         [](const ::testing::TestParamInfo<FuzzTarget>& p) {
                           return std::string(p.param.name);
                         });

}  // namespace
}  // namespace taskpipe::fuzz
