"""The pseudo-terminal stands in for a serial MRZ reader: pyserial reads what the reader sends."""

import serial

MRZ_TD1 = (
    b"I<UTOD231458907<<<<<<<<<<<<<<<\r"
    b"7408122F1204159UTO<<<<<<<<<<<6\r"
    b"ERIKSSON<<ANNA<MARIA<<<<<<<<<<\r"
)


def test_pyserial_reads_what_the_reader_end_writes(pty_pair):
    with serial.Serial(pty_pair.device, baudrate=9600, timeout=2) as port:
        pty_pair.write(MRZ_TD1)
        received = port.read(len(MRZ_TD1))
    assert received == MRZ_TD1  # byte for byte: CRs are not translated, nothing is echoed


def test_reads_split_across_writes_arrive_in_order(pty_pair):
    with serial.Serial(pty_pair.device, baudrate=115200, timeout=2) as port:
        for start in range(0, len(MRZ_TD1), 7):
            pty_pair.write(MRZ_TD1[start : start + 7])
        received = port.read(len(MRZ_TD1))
    assert received == MRZ_TD1
