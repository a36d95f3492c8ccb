"""Between the SFU and the MCU leaves: RTP to frames (depacketize), frames to RTP (packetize), the
rendition ladder and media modes, and the meeting's compositor + mixer pipeline."""
