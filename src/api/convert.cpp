// moedist/convert.hpp: the codecs of quant/float_bits.hpp, exported.
#include "moedist/convert.hpp"

#include "quant/float_bits.hpp"

namespace moedist {

uint16_t bf16_from_float(float value) { return quant::f32_to_bf16(value); }
float float_from_bf16(uint16_t bits) { return quant::bf16_to_f32(bits); }
uint16_t fp16_from_float(float value) { return quant::f32_to_f16(value); }
float float_from_fp16(uint16_t bits) { return quant::f16_to_f32(bits); }

}  // namespace moedist
