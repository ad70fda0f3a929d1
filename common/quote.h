// Quoting of user input inside error messages. Pure function; thread-safe.
#ifndef TASKPIPE_COMMON_QUOTE_H_
#define TASKPIPE_COMMON_QUOTE_H_

#include <string>
#include <string_view>

namespace taskpipe {

// `text` in double quotes, bytes outside printable ASCII (and '"', '\\') escaped as \xNN, cut to
// 80 bytes with "..." after: safe to put in a one-line error message whatever the input was.
std::string QuoteForError(std::string_view text);

}  // namespace taskpipe

#endif  // TASKPIPE_COMMON_QUOTE_H_
