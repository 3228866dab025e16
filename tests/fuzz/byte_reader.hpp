// Reads a fuzzer input front to back, one field at a time; past the end every field reads 0, so
// any prefix of an input is an input. tests/fuzz/make_corpus.py writes the same layout.
#pragma once

#include <cstddef>
#include <cstdint>

namespace moedist::fuzz {

class ByteReader {
public:
    ByteReader(const uint8_t* data, std::size_t size) : data_(data), size_(size) {}
    uint8_t u8() { return pos_ < size_ ? data_[pos_++] : 0; }
    uint16_t u16() { return static_cast<uint16_t>(u8() | (u8() << 8)); }
    uint32_t u32() { return static_cast<uint32_t>(u16()) | (static_cast<uint32_t>(u16()) << 16); }
    uint64_t u64() { return static_cast<uint64_t>(u32()) | (static_cast<uint64_t>(u32()) << 32); }
    // n in [lo, hi] from one byte (or two when the range is wider than 256).
    int64_t range(int64_t lo, int64_t hi) {
        const auto span = static_cast<uint64_t>(hi - lo) + 1;
        const uint64_t raw = span <= 256 ? u8() : u16();
        return lo + static_cast<int64_t>(raw % span);
    }
    bool flag() { return (u8() & 1) != 0; }

private:
    const uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
};

}  // namespace moedist::fuzz
