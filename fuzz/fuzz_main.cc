// The libFuzzer entry point for one target of fuzz/fuzz_targets.h, chosen at compile time:
//   clang++ -fsanitize=fuzzer,address,undefined -DTASKPIPE_FUZZ_TARGET=FuzzSchedule fuzz_main.cc ...
// fuzz/CMakeLists.txt builds it once per target (fuzz_schedule, fuzz_config, ...).
#include <cstddef>
#include <cstdint>

#include <spdlog/spdlog.h>

#include "fuzz/fuzz_targets.h"

#ifndef TASKPIPE_FUZZ_TARGET
#error "define TASKPIPE_FUZZ_TARGET to one of the functions of fuzz/fuzz_targets.h, e.g. FuzzSchedule"
#endif

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  // The parsers do not log; should one start to, its lines must not drown libFuzzer's.
  spdlog::set_level(spdlog::level::off);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  return taskpipe::fuzz::TASKPIPE_FUZZ_TARGET(data, size);
}
