// Internal to the naive reference: the scalar quantizers of SPEC §5, one row at a time.
// Written from SPEC.md alone (8-bit encodings through format_reference, which is written from
// the format definitions); no code shared with src/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "reference.hpp"

namespace moedist_ref::detail {

// clamp(rne(v), lo, hi) with NaN -> 0 (SPEC §5 int8 conversion; also SPEC §4.2's ±127 clamp).
int rne_clamp(float v, int lo, int hi);

// max |v| over n values; NaN-propagating (SPEC §5 speaks of "m NaN").
float max_abs(const float* v, std::size_t n);

// One binary32 value converted to an 8-bit target: int8 (two's-complement byte, SPEC's int8
// conversion), fp8 e4m3fn / e5m2 (RNE, saturating, NaN -> canonical NaN with sign) or hifloat8.
uint8_t encode8(Elem target, float v);

// One quantized row: H bytes of the target format and the row's scales (floats for modes 0/2/3,
// E8M0 bytes for mode 4, pad byte included).
struct QuantRow {
    std::vector<uint8_t> bytes;
    std::vector<float> scales;
    std::vector<uint8_t> scale_bytes;
};

// Mode 1: q = convert(fl32(x·s)); s[0] for every element when `broadcast`, else s[j].
QuantRow quantize_static(const std::vector<float>& x, const float* s, bool broadcast, Elem target);

// Modes 2 and 3 on y (already smoothed): one scale per group of `group` contiguous elements (the
// last group holds the remainder). Target int8, e4m3fn or e5m2.
QuantRow quantize_dynamic(const std::vector<float>& y, Elem target, std::size_t group);

// Mode 4 (MX, blocks of 32, E8M0 scale bytes, 2·⌈⌈H/32⌉/2⌉ of them). Target e4m3fn or e5m2.
QuantRow quantize_mx(const std::vector<float>& x, Elem target);

// SPEC §5's table (defined in reference.cpp): "" when cfg's (quantMode, x dtype, expandX dtype,
// scales kind) combination exists, else the message. The V2 reference applies it too.
std::string check_quant(const JobConfig& cfg);

// SPEC §4.2's int8 return leg (defined in reference.cpp): one returned row of H values (16-bit
// patterns of `el`) replaced, in place, by what its receiver reconstructs. The V2 reference uses
// it for every returned row, shared rows included.
void comm_quant_round_trip(Elem el, std::vector<uint16_t>& row);

}  // namespace moedist_ref::detail
