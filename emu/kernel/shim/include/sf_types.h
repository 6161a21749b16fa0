/* sledfuzz shim: the kernel's fixed-width types (LP64 on both x86-64 and RV64). */
#ifndef SF_TYPES_H
#define SF_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef int8_t s8;
typedef uint8_t u8;
typedef int16_t s16;
typedef uint16_t u16;
typedef int32_t s32;
typedef uint32_t u32;
/* long long, as the kernel's int-ll64.h has it (its printk formats say %llx) */
typedef signed long long s64;
typedef unsigned long long u64;

typedef int8_t __s8;
typedef uint8_t __u8;
typedef int16_t __s16;
typedef uint16_t __u16;
typedef int32_t __s32;
typedef uint32_t __u32;
typedef signed long long __s64;
typedef unsigned long long __u64;
typedef __u16 __le16;
typedef __u16 __be16;
typedef __u32 __le32;
typedef __u32 __be32;
typedef __u64 __le64;
typedef __u64 __be64;
typedef __u64 __aligned_u64 __attribute__((aligned(8)));
typedef unsigned int __poll_t;
typedef unsigned int gfp_t;

_Static_assert(sizeof(long) == 8 && sizeof(void *) == 8, "the shim needs an LP64 host");

#endif
