"""The s390 kernel disassembler's opcode table (arch/s390/kernel/dis.c, Linux 6.1), as
scripts/extract-s390-opcodes read it from Debian's vmlinux-6.1.0-50-s390x: ``find_insn``
looks the first byte up in OPCODE_OFFSET (byte, mask, opfrags: the instruction is known when
``code[byte] & mask`` is one of them); a first byte not listed falls to ONE_BYTE (the table's
last entry, the one-byte opcodes, compared on ``code[0]``)."""

#: first byte -> (byte index, mask, the known values of code[byte] & mask)
OPCODE_OFFSET: dict[int, tuple[int, int, bytes]] = {
    0x00: (1, 0xFF, bytes.fromhex("0002")),
    0x01: (1, 0xFF, bytes.fromhex("010204070a0b0c0d0eff")),
    0xA5: (1, 0x0F, bytes.fromhex("000102030405060708090a0b0c0d0e0f")),
    0xA7: (1, 0x0F, bytes.fromhex("000102030405060708090a0b0c0d0e0f")),
    0xAA: (1, 0x0F, bytes.fromhex("0001020304")),
    0xB2: (
        1,
        0xFF,
        bytes.fromhex(
            "0001020405060708090a0b0d1011121418191a202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c"
            "40414445464748494a4b4c4d4e4f505254555657585a5d5e5f6374767778797c7d80848586878e8f999c9da5a6a7adae"
            "afb0b1b2b8b9bde0e1e4e5e8ecedf0f8fafcff"
        ),
    ),
    0xB3: (
        1,
        0xFF,
        bytes.fromhex(
            "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2425262e2f363738393a3b3c3d3e3f40"
            "4142434445464748494a4b4c4d5051535758595b5f606162636566676970717273747576777f84858c90919294959698"
            "999a9c9d9ea0a1a2a4a5a6a8a9aaacadaeb4b5b6b8b9bac1c4c5c6c8c9cacdd0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0"
            "e1e2e3e4e5e7e8e9eaebecedeff1f2f3f4f5f6f7f9fafbfcfdfeff"
        ),
    ),
    0xB9: (
        1,
        0xFF,
        bytes.fromhex(
            "000102030405060708090a0b0c0d0e0f1011121314161718191a1b1c1d1e1f202125262728292a2b2c2d2e2f30313839"
            "3a3b3c3e3f41424346494a4b515253595a5b606164656667727374757677808182838485868788898a8b8d8e8f909192"
            "939495969798999a9b9c9d9e9fa0a1a2a4aaabacaeafb0b1b2b3bdbebfc0c8c9cacbcdcfd0d2d3d4d5d6d8d9dadbdddf"
            "e0e1e2e3e4e5e6e7e8e9eaebecedf0f2f4f5f6f7f8f9fafbfd"
        ),
    ),
    0xC0: (1, 0x0F, bytes.fromhex("00010405060708090a0b0c0d0e0f")),
    0xC2: (1, 0x0F, bytes.fromhex("0001040508090a0b0c0d0e0f")),
    0xC4: (1, 0x0F, bytes.fromhex("0204050607080b0c0d0e0f")),
    0xC6: (1, 0x0F, bytes.fromhex("000204050607080a0c0d0e0f")),
    0xC8: (1, 0x0F, bytes.fromhex("0001020405")),
    0xCC: (1, 0x0F, bytes.fromhex("06080a0b0d0f")),
    0xE3: (
        5,
        0xFF,
        bytes.fromhex(
            "0203040608090a0b0c0d0e0f12131415161718191a1b1c1d1e1f20212425262a2e2f303132343638393a3b3c3e3f4647"
            "48494c4d5051535455565758595a5b5c5e5f7071727375767778797a7b7c808182838485868788898e8f909194959697"
            "98999c9d9fc0c2c3c4c6c7c8cacbcdcfd0d4"
        ),
    ),
    0xE5: (1, 0xFF, bytes.fromhex("0001020a0e0f44484c545558595c5d6061")),
    0xE6: (
        5,
        0xFF,
        bytes.fromhex("01020304050607090a0b0e0f3435373c3d3f4950515254555658595a5b5c5d5e5f7071727374757778797a7b7c7d7e"),
    ),
    0xE7: (
        5,
        0xFF,
        bytes.fromhex(
            "000102030405060708090a0b0e12131a1b21222730333637383a3e3f404142434445464a4d505253565c5f6061626465"
            "666768696a6b6c6d6e6f707273747577787a7c7d7e7f808182848586878a8b8c8d8e8f9495979e9fa1a2a3a4a5a6a7a9"
            "aaabacadaeafb4b8b9bbbcbdbfc0c1c2c3c4c5c7cacbccced4d5d6d7d8d9dbdedfe2e3e5e7e8eaebeeeff0f1f2f3f5f7"
            "f8f9fbfcfdfeff"
        ),
    ),
    0xEB: (
        5,
        0xFF,
        bytes.fromhex(
            "040a0b0c0d0f14171c1d2021232425262b2c2d2f30313e44454c5152545556576061626a6e717a7e80818a8e8f909698"
            "9a9bc0d0d1d4dcdddedfe0e1e2e3e4e6e7e8eaf2f3f4f6f7f8fa"
        ),
    ),
    0xEC: (5, 0xFF, bytes.fromhex("424445464e5154555657595d64657071727376777c7d7e7fd8d9dadbe4e5f6f7fcfdfeff")),
    0xED: (
        5,
        0xFF,
        bytes.fromhex(
            "0405060708090a0b0c0d0e0f10111214151718191a1b1c1d1e1f2425262e2f34353738393a3b3c3d3e3f404148495051"
            "5455585964656667a8a9aaabacadaeaf"
        ),
    ),
}
#: the last entry: one-byte opcodes, code[0] itself
ONE_BYTE = bytes.fromhex(
    "040506070a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f303132333435"
    "363738393a3b3c3d3e3f404142434445464748494a4b4c4d4e4f50515455565758595a5b5c5d5e5f606768696a6b6c6d"
    "6e6f707178797a7b7c7d7e7f8082838485868788898a8b8c8d8e8f909192939495969798999a9ba8a9acadaeafb1b6b7"
    "babbbdbebfc5c7d0d1d2d3d4d5d6d7d9dadbdcdddedfe1e2e8e9eaeeeff0f1f2f3f8f9fafbfcfd"
)
