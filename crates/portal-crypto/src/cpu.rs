//! CPU feature detection and the AES-GCM code path it selects.
//!
//! The fast AEADs come from AWS-LC (through aws-lc-rs), whose dispatcher
//! reads the same CPUID / HWCAP bits at run time. [`gcm_backend`] names the
//! path that dispatcher takes for those bits, so users can see at a glance
//! whether their machine runs the hardware path.

/// What the CPU offers for the project's hot paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Features {
    /// `x86_64`, `aarch64`, or another `std::env::consts::ARCH`.
    pub arch: &'static str,
    /// AES round instructions (AES-NI, or ARMv8 AES).
    pub aes: bool,
    /// Carry-less multiply for GHASH (PCLMULQDQ, or ARMv8 PMULL).
    pub clmul: bool,
    /// 256-bit integer vectors (AVX2), for Argon2's block function.
    pub avx2: bool,
    /// 512-bit vectors (AVX-512 Foundation).
    pub avx512f: bool,
    /// 256/512-bit vector AES with vector carry-less multiply (VAES + VPCLMULQDQ).
    pub vaes: bool,
    /// SHA-256 instructions (SHA-NI, or ARMv8 SHA2).
    pub sha: bool,
}

/// Detects the running CPU's features (cheap; the standard library caches CPUID).
#[cfg(target_arch = "x86_64")]
pub fn detect() -> Features {
    use std::arch::is_x86_feature_detected as has;
    Features {
        arch: "x86_64",
        aes: has!("aes"),
        clmul: has!("pclmulqdq"),
        avx2: has!("avx2"),
        avx512f: has!("avx512f"),
        vaes: has!("vaes") && has!("vpclmulqdq"),
        sha: has!("sha"),
    }
}

/// Detects the running CPU's features (cheap; the standard library caches HWCAP).
#[cfg(target_arch = "aarch64")]
pub fn detect() -> Features {
    use std::arch::is_aarch64_feature_detected as has;
    Features {
        arch: "aarch64",
        aes: has!("aes"),
        clmul: has!("pmull"),
        sha: has!("sha2"),
        ..Features::default()
    }
}

/// Detects the running CPU's features: none known on this architecture.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
pub fn detect() -> Features {
    Features {
        arch: std::env::consts::ARCH,
        ..Features::default()
    }
}

/// The AES-GCM code path AWS-LC dispatches to on a CPU with `f`.
pub fn gcm_backend(f: &Features) -> &'static str {
    match f.arch {
        "x86_64" if f.vaes && f.avx512f => "aws-lc vaes-avx512 (AES-NI 512-bit + VPCLMULQDQ)",
        "x86_64" if f.vaes && f.avx2 => "aws-lc vaes-avx2 (AES-NI 256-bit + VPCLMULQDQ)",
        "x86_64" if f.aes && f.clmul && f.avx2 => "aws-lc aesni-avx (stitched AES-NI + PCLMULQDQ)",
        "x86_64" if f.aes && f.clmul => "aws-lc aesni-clmul",
        "aarch64" if f.aes && f.clmul => "aws-lc armv8 (AES + PMULL)",
        _ => "aws-lc constant-time software (no AES instructions)",
    }
}
