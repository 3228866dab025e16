// Text that came from another process (a verdict, a departure message, a group name in a hello)
// is never pasted raw into an error: it is read up to a bound (no terminator needed) and every
// byte outside printable ASCII becomes '?', so a forged message cannot add lines or terminal
// escapes to the job's output.
#pragma once

#include <cstddef>
#include <string>

namespace moedist::util {

inline std::string peer_text(const char* bytes, std::size_t capacity, std::size_t limit = 240) {
    std::string out;
    const std::size_t n = capacity < limit ? capacity : limit;
    for (std::size_t i = 0; i < n && bytes[i] != '\0'; ++i) {
        const auto c = static_cast<unsigned char>(bytes[i]);
        out.push_back(c >= 0x20 && c < 0x7F ? static_cast<char>(c) : '?');
    }
    return out;
}

template <std::size_t N>
std::string peer_text(const char (&bytes)[N], std::size_t limit = 240) {
    return peer_text(bytes, N, limit);
}

}  // namespace moedist::util
