// A slow, independent reference for the 8-bit number formats of SPEC §5, written from the format
// definitions only: every code's value is built from its sign/exponent/mantissa fields as a double,
// and a float is encoded by searching that table for its nearest neighbours.
//
//   fp8 e4m3fn  bias 7,  3 mantissa bits, no Inf, NaN = S.1111.111, max 448
//   fp8 e5m2    bias 15, 2 mantissa bits, Inf = S.11111.00, NaN = S.11111.{01,10,11}, max 57344
//   HiFloat8    S | dot | exponent (sign + D−1 bits, implicit leading 1) | mantissa, dot classes
//               11 (D=4, 1 mantissa bit), 10 (D=3, 2), 01 (D=2, 3), 001 (D=1, 3), 0001 (D=0, 3),
//               0000 denormals 2^(M−23), M = 1..7; 0x00 = 0, 0x80 = NaN, 0x6F/0xEF = ±Inf.
//   E8M0        2^(b − 127), 0xFF = NaN
//
// Encoding: NaN -> the canonical NaN (fp8: 0x7F / 0x7E with the NaN's sign; HiFloat8 0x80);
// |v| above the largest finite value (Inf too) -> ±max; otherwise the nearest value, an exact tie
// going to the code with an even last mantissa bit (fp8) or to the larger magnitude (HiFloat8).
// fp8 results keep the input's sign (−0 -> 0x80); a HiFloat8 zero is always 0x00.
#pragma once

#include <cstdint>
#include <vector>

namespace moedist_ref {

enum class Format8 { kFp8E4M3, kFp8E5M2, kHiFloat8 };

const char* format8_name(Format8 format);

// The value of a code: NaN for NaN codes, ±infinity for Inf codes, −0.0 for fp8's 0x80.
double format8_value(Format8 format, uint8_t code);

// Every distinct finite value of the format, ascending (zero once, as +0.0).
std::vector<double> format8_finite_values(Format8 format);

// float -> code by nearest search over the table, with the rules above.
uint8_t format8_encode(Format8 format, float value);

// E8M0: the value of a byte (NaN for 0xFF), and the byte of a biased exponent clamped to [0, 254].
double e8m0_value(uint8_t code);
uint8_t e8m0_from_biased(int biased);

}  // namespace moedist_ref
