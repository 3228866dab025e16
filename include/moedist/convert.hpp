// moedist/convert.hpp — bf16 and fp16 to and from float, bit-exact (round to nearest even,
// subnormals kept, a NaN becomes the format's canonical quiet NaN with its sign: bf16 0x7FC0,
// fp16 0x7E00), the conversions dispatch and combine use. For filling inputs and reading outputs:
//
//   std::vector<uint16_t> x(bs * hidden);
//   for (std::size_t i = 0; i < x.size(); ++i) x[i] = moedist::bf16_from_float(values[i]);
//   float y = moedist::float_from_bf16(x_out[i]);
#pragma once

#include <cstdint>

#include "moedist/export.hpp"

namespace moedist {

MOEDIST_API uint16_t bf16_from_float(float value);
MOEDIST_API float float_from_bf16(uint16_t bits);
MOEDIST_API uint16_t fp16_from_float(float value);
MOEDIST_API float float_from_fp16(uint16_t bits);

}  // namespace moedist
