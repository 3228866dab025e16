#include "quant/fp8.hpp"

#include "moedist/dtype.hpp"
#include "quant/fused_rows.hpp"

#include "util/cpu.hpp"

namespace moedist::quant {

// With AVX-512 VBMI (and not in sanitized builds) the rows take the vector codecs of
// fused_rows.cpp (register byte tables, one-add fp8 rounding). Otherwise (valgrind hides AVX-512,
// too) the portable loops: the scalar conversions are branch-free selects over integer lanes, so
// these loops vectorize (the decodes become table gathers).

namespace fp8_detail {

MOEDIST_MULTIVERSION
void f32_row_to_fp8_e4m3_portable(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_fp8_e4m3(src[i]);
}

MOEDIST_MULTIVERSION
void f32_row_to_fp8_e5m2_portable(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_fp8_e5m2(src[i]);
}

MOEDIST_MULTIVERSION
void f32_row_to_hifloat8_portable(const float* src, uint8_t* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = f32_to_hifloat8(src[i]);
}

namespace {

// Every fp8 code's binary32 bits, from the scalar decoders: a decode is one table gather.
template <float (*Decode)(uint8_t)>
struct DecodeTable {
    uint32_t bits[256];
    DecodeTable() {
        for (int c = 0; c < 256; ++c) bits[c] = f32_bits(Decode(static_cast<uint8_t>(c)));
    }
};

const uint32_t* e4m3_table() {
    static const DecodeTable<fp8_e4m3_to_f32> table;
    return table.bits;
}

const uint32_t* e5m2_table() {
    static const DecodeTable<fp8_e5m2_to_f32> table;
    return table.bits;
}

MOEDIST_MULTIVERSION
void gather_row(const uint32_t* table, const uint8_t* src, float* dst, int64_t n) {
    for (int64_t i = 0; i < n; ++i) dst[i] = bits_f32(table[src[i]]);
}

}  // namespace

void fp8_e4m3_row_to_f32_portable(const uint8_t* src, float* dst, int64_t n) {
    gather_row(e4m3_table(), src, dst, n);
}

void fp8_e5m2_row_to_f32_portable(const uint8_t* src, float* dst, int64_t n) {
    gather_row(e5m2_table(), src, dst, n);
}

void hifloat8_row_to_f32_portable(const uint8_t* src, float* dst, int64_t n) {
    gather_row(kHiFloat8Bits.data(), src, dst, n);
}

}  // namespace fp8_detail

void f32_row_to_fp8_e4m3(const float* src, uint8_t* dst, int64_t n) {
    if (vector_codecs_available()) return vector_encode_row(DType::kFp8E4M3, src, dst, n);
    fp8_detail::f32_row_to_fp8_e4m3_portable(src, dst, n);
}

void f32_row_to_fp8_e5m2(const float* src, uint8_t* dst, int64_t n) {
    if (vector_codecs_available()) return vector_encode_row(DType::kFp8E5M2, src, dst, n);
    fp8_detail::f32_row_to_fp8_e5m2_portable(src, dst, n);
}

void f32_row_to_hifloat8(const float* src, uint8_t* dst, int64_t n) {
    if (vector_codecs_available()) return vector_encode_row(DType::kHiFloat8, src, dst, n);
    fp8_detail::f32_row_to_hifloat8_portable(src, dst, n);
}

void fp8_e4m3_row_to_f32(const uint8_t* src, float* dst, int64_t n) {
    if (vector_codecs_available()) return vector_decode_row(DType::kFp8E4M3, src, dst, n);
    fp8_detail::fp8_e4m3_row_to_f32_portable(src, dst, n);
}

void fp8_e5m2_row_to_f32(const uint8_t* src, float* dst, int64_t n) {
    if (vector_codecs_available()) return vector_decode_row(DType::kFp8E5M2, src, dst, n);
    fp8_detail::fp8_e5m2_row_to_f32_portable(src, dst, n);
}

void hifloat8_row_to_f32(const uint8_t* src, float* dst, int64_t n) {
    if (vector_codecs_available()) return vector_decode_row(DType::kHiFloat8, src, dst, n);
    fp8_detail::hifloat8_row_to_f32_portable(src, dst, n);
}

}  // namespace moedist::quant
