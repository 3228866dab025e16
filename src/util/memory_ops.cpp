#include "util/memory_ops.hpp"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "util/cpu.hpp"

namespace moedist::util {
namespace {

#if defined(MOEDIST_VECTOR_X86)
bool can_stream() {
    return cpu_avx2();
}

// Bytes up to the next 32-byte boundary of `p` (at most `bytes`).
std::size_t head_bytes(const void* p, std::size_t bytes) {
    const auto misalign = reinterpret_cast<std::uintptr_t>(p) & 31u;
    const std::size_t head = misalign == 0 ? 0 : 32 - misalign;
    return head < bytes ? head : bytes;
}

__attribute__((target("avx2"))) void stream_copy(char* dst, const char* src, std::size_t bytes) {
    const std::size_t head = head_bytes(dst, bytes);
    std::memcpy(dst, src, head);
    std::size_t i = head;
    for (; i + 128 <= bytes; i += 128) {
        const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
        const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 64));
        const __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 96));
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), a);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 32), b);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 64), c);
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 96), d);
    }
    for (; i + 32 <= bytes; i += 32) {
        _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i),
                            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    }
    std::memcpy(dst + i, src + i, bytes - i);
}

__attribute__((target("avx2"))) void stream_zero(char* dst, std::size_t bytes) {
    const std::size_t head = head_bytes(dst, bytes);
    std::memset(dst, 0, head);
    const __m256i zero = _mm256_setzero_si256();
    std::size_t i = head;
    for (; i + 32 <= bytes; i += 32) _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), zero);
    std::memset(dst + i, 0, bytes - i);
}
#endif

}  // namespace

void copy_bytes(void* dst, const void* src, std::size_t bytes, bool streaming) {
#if defined(MOEDIST_VECTOR_X86)
    if (streaming && bytes >= 256 && can_stream()) {
        stream_copy(static_cast<char*>(dst), static_cast<const char*>(src), bytes);
        return;
    }
#endif
    (void)streaming;
    std::memcpy(dst, src, bytes);
}

void zero_bytes(void* dst, std::size_t bytes, bool streaming) {
#if defined(MOEDIST_VECTOR_X86)
    if (streaming && bytes >= 256 && can_stream()) {
        stream_zero(static_cast<char*>(dst), bytes);
        return;
    }
#endif
    (void)streaming;
    std::memset(dst, 0, bytes);
}

void streaming_fence() {
#if defined(__x86_64__)
    _mm_sfence();
#endif
}

}  // namespace moedist::util
