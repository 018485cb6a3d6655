"""``python -m recbole_lsrm.scales``: print the six LSRM scales of Table IV."""

from recbole_lsrm.scaling.scales import scales, scales_table

if __name__ == "__main__":
    print("Table IV: LSRM scales (non-embedding parameters N = 12 * n_layers * d_model^2)\n")
    print(scales_table(scales()))
