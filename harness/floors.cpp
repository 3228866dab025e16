#include "harness/floors.hpp"

#include "util/cpu.hpp"

#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace moedist::harness {

#if defined(__x86_64__)
// A non-zero pattern: this machine (Zen 5) streams all-zero lines about twice as fast as data,
// so a zero fill would be a floor no dispatch of real rows could reach.
__attribute__((target("avx2"))) static void nt_write_avx2(uint8_t* p, std::size_t bytes) {
    const __m256i pattern = _mm256_set1_epi64x(0x5A3C96E1D2B4870FLL);
    std::size_t i = 0;
    while (i < bytes && (reinterpret_cast<std::uintptr_t>(p + i) & 31u) != 0) p[i++] = 0x5A;
    for (; i + 128 <= bytes; i += 128) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p + i), pattern);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p + i + 32), pattern);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p + i + 64), pattern);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(p + i + 96), pattern);
    }
    for (; i < bytes; ++i) p[i] = 0x5A;
    _mm_sfence();
}
#endif

void nt_write(void* dst, std::size_t bytes) {
    auto* p = static_cast<uint8_t*>(dst);
#if defined(__x86_64__)
    if (moedist::util::cpu_avx2()) return nt_write_avx2(p, bytes);
#endif
    std::memset(p, 0x5A, bytes);
}

#if defined(__x86_64__)
__attribute__((target("avx2"))) static uint64_t read_avx2(const uint8_t* p, std::size_t bytes) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    std::size_t i = 0;
    for (; i + 128 <= bytes; i += 128) {
        a = _mm256_or_si256(a, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)));
        b = _mm256_or_si256(b, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
        c = _mm256_or_si256(c, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
        d = _mm256_or_si256(d, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
    }
    const __m256i all = _mm256_or_si256(_mm256_or_si256(a, b), _mm256_or_si256(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(lanes), all);
    uint64_t h = lanes[0] | lanes[1] | lanes[2] | lanes[3];
    for (; i < bytes; ++i) h |= p[i];
    return h;
}
#endif

uint64_t stream_read(const void* src, std::size_t bytes) {
    const auto* p = static_cast<const uint8_t*>(src);
#if defined(__x86_64__)
    if (moedist::util::cpu_avx2()) {
        const uint64_t h = read_avx2(p, bytes);
        asm volatile("" : : "r"(h) : "memory");
        return h;
    }
#endif
    uint64_t h = 0;
    for (std::size_t i = 0; i + 8 <= bytes; i += 8) {
        uint64_t v;
        std::memcpy(&v, p + i, 8);
        h |= v;
    }
    asm volatile("" : : "r"(h) : "memory");
    return h;
}

}  // namespace moedist::harness
