/* The official aligner's Korean word list (spec qwen3-forced-aligner.md 5.5), built into the
 * program so that an aligner checkpoint directory as published (which does not hold it) works.
 * QASR_KOREAN_DICT: its path, from CMake. */
    .section .rodata
    .global qasr_korean_dict
    .global qasr_korean_dict_end
qasr_korean_dict:
    .incbin QASR_KOREAN_DICT
qasr_korean_dict_end:
    .byte 0
    .section .note.GNU-stack, "", @progbits
